"""The live config: routing policy and directories, reloadable without a restart."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ari_app.config.directories import load_legal_directory
from ari_app.config.files import ConfigError
from ari_app.config.policy import load_policy
from ari_app.core.environment import LegalDirectory
from ari_app.core.policy import Policy

log = logging.getLogger("caseline.config")


@dataclass(frozen=True)
class Snapshot:
    """One consistent set of live config: a call uses one snapshot from start to end."""

    policy: Policy
    directory: LegalDirectory


class Reloadable(Protocol):
    def reload(self) -> None: ...


class LiveConfig:
    """The routing policy and directories, reloadable; a broken file keeps the old ones."""

    def __init__(self, routing_path: Path, directory_path: Path,
                 crm: Reloadable | None = None) -> None:
        self.routing_path = routing_path
        self.directory_path = directory_path
        self.crm = crm
        self.current = self._load()
        self.loaded_at = time.time()

    def _load(self) -> Snapshot:
        policy = load_policy(self.routing_path)
        if self.directory_path.exists():
            directory = load_legal_directory(self.directory_path)
        else:
            directory = LegalDirectory({}, {})
        return Snapshot(policy, directory)

    def reload(self) -> None:
        """Load everything first, then swap: either all of it changes or nothing does."""
        snapshot = self._load()
        if self.crm is not None:
            self.crm.reload()  # the file CRM re-reads its directory; the cache is dropped
        self.current = snapshot
        self.loaded_at = time.time()
        log.info("config reloaded from %s", self.routing_path.parent)

    def try_reload(self) -> str | None:
        """Reload; return None on success or the error text (file, key, reason)."""
        try:
            self.reload()
        except ConfigError as e:
            log.error("reload refused, keeping the running config: %s", e)
            return str(e)
        return None

    def managers_by_endpoint(self) -> dict[str, str]:
        """endpoint resource ("mgr1" of "PJSIP/mgr1") -> manager id, from the live policy."""
        people = self.current.policy.people
        return {person.endpoint.partition("/")[2]: pid for pid, person in people.managers.items()}
