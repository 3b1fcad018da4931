"""The live config: routing policy and directories, reloadable without a restart."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ari_app.config.directories import load_legal_directory
from ari_app.config.files import ConfigError
from ari_app.config.numbering import load_numbering_plan
from ari_app.config.policy import load_policy
from ari_app.core.environment import LegalDirectory
from ari_app.core.numbering import NumberingPlan
from ari_app.core.policy import Policy

log = logging.getLogger("caseline.config")


@dataclass(frozen=True)
class Snapshot:
    """One consistent set of live config: a call uses one snapshot from start to end."""

    policy: Policy
    directory: LegalDirectory
    numbering: NumberingPlan | None = None  # None: callers' zones from phonenumbers only


class Reloadable(Protocol):
    def reload(self) -> None: ...


class LiveConfig:
    """The routing policy and directories, reloadable; a broken file keeps the old ones."""

    def __init__(self, routing_path: Path, directory_path: Path,
                 crm: Reloadable | None = None, numbering_path: Path | None = None) -> None:
        self.routing_path = routing_path
        self.directory_path = directory_path
        self.crm = crm
        self.numbering_path = numbering_path
        self.current = self._load()
        self.loaded_at = time.time()

    def _load(self) -> Snapshot:
        policy = load_policy(self.routing_path)
        if self.directory_path.exists():
            # a directory naming someone the policy cannot ring is refused like a bad policy
            directory = load_legal_directory(self.directory_path,
                                             known_person=lambda pid: policy.person(pid) is not None)
        else:
            directory = LegalDirectory({}, {})
        numbering = None
        if self.numbering_path is not None and self.numbering_path.exists():
            numbering = load_numbering_plan(self.numbering_path)  # cached until the file changes
        return Snapshot(policy, directory, numbering)

    def reload(self) -> None:
        """Load everything first, then swap: either all of it changes or nothing does."""
        snapshot = self._load()
        if self.crm is not None:
            self.crm.reload()  # the file CRM re-reads its directory; the cache is dropped
        self.current = snapshot
        self.loaded_at = time.time()
        log.info("config reloaded from %s", self.routing_path.parent)

    def prepare_reload(self) -> Callable[[], None]:
        """Reload in two steps: load and check everything now (blocking file I/O and parsing:
        run it in a worker thread; ConfigError changes nothing), and return the function that
        swaps it all in, to be called on the event loop, where calls read config and CRM cache."""
        snapshot = self._load()
        prepare_crm = getattr(self.crm, "prepare_reload", None)
        swap_crm = prepare_crm() if prepare_crm is not None else None

        def swap() -> None:
            if swap_crm is not None:
                swap_crm()
            elif self.crm is not None:
                self.crm.reload()
            self.current = snapshot
            self.loaded_at = time.time()
            log.info("config reloaded from %s", self.routing_path.parent)
        return swap

    def try_reload(self) -> str | None:
        """Reload; return None on success or the error text (file, key, reason)."""
        try:
            self.reload()
        except ConfigError as e:
            log.error("reload refused, keeping the running config: %s", e)
            return str(e)
        return None
