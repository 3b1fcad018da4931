"""identify + decide for one call, shared by the ARI app and the FastAGI front.

The Router owns no I/O of its own: history, CRM, directory and clock are injected adapters.
The policy and the directory are held in a `LiveConfig` that ops reload without a restart.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ari_app.config.files import ConfigError
from ari_app.core.clock import Clock
from ari_app.core.decide import decide
from ari_app.core.environment import LegalDirectory, describe_number, load_legal_directory
from ari_app.core.history_class import Windows
from ari_app.core.identify import gather_profile
from ari_app.core.models import CallerProfile, CrmFacts, Decision, EnvironmentFacts
from ari_app.crm.service import CrmService
from ari_app.history.store import HistoryStore
from ari_app.config.policy import load_policy
from ari_app.core.policy import Policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """One consistent set of live config: a call uses one snapshot from start to end."""

    policy: Policy
    directory: LegalDirectory


class LiveConfig:
    """The routing policy and directories, reloadable; a broken file keeps the old ones."""

    def __init__(self, routing_path: Path, directory_path: Path,
                 crm: CrmService | None = None) -> None:
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


@dataclass(frozen=True)
class Routed:
    profile: CallerProfile
    decision: Decision
    snapshot: Snapshot
    seconds: float  # identify + decide wall time


class Router:
    def __init__(self, *, config: LiveConfig, history: HistoryStore,
                 crm: Callable[[str], object] | None, clock: Clock, windows: Windows,
                 history_budget_s: float, crm_budget_s: float, default_region: str) -> None:
        self.config = config
        self.history = history
        self.crm = crm
        self.clock = clock
        self.windows = windows
        self.history_budget_s = history_budget_s
        # the CRM service enforces its own budget; ours is a backstop slightly above it
        self.budget_s = max(history_budget_s, crm_budget_s + 0.05)
        self.default_region = default_region

    async def route(self, raw_caller_id: str | None, call_id: str = "") -> Routed:
        started = time.perf_counter()
        snapshot = self.config.current

        def environment(number: str, now: datetime) -> EnvironmentFacts:
            return describe_number(number, now, directory=snapshot.directory)

        async def crm_lookup(number: str) -> CrmFacts:
            if self.crm is None:
                return CrmFacts()
            return await self.crm(number)  # type: ignore[misc]

        profile = await gather_profile(
            raw_caller_id, history=self.history, crm_lookup=crm_lookup, environment=environment,
            clock=self.clock, windows=self.windows, budget_s=self.budget_s,
            default_region=self.default_region)
        decision = decide(profile, snapshot.policy, self.clock.now())
        return Routed(profile, decision, snapshot, time.perf_counter() - started)
