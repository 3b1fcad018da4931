"""identify + decide for one call, over the core's ports; shared by the ARI and FastAGI fronts.

The Router owns no I/O of its own: history, CRM, directories and clock are injected
adapters (core/ports.py). It reads the clock once per call, so identify and decide see the
same moment. The policy and the directory come from the live config (config/live.py).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ari_app.config.directories import RegionNames
from ari_app.config.live import LiveConfig, Snapshot
from ari_app.core.admission import ShedTarget, shed_target
from ari_app.core.decide import decide
from ari_app.core.environment import describe_number
from ari_app.core.history_class import Windows
from ari_app.core.identify import decide_input, identify
from ari_app.core.models import (
    CallerProfile,
    Contact,
    CrmFacts,
    CrmRecord,
    Decision,
    EnvironmentFacts,
    SourceStatus,
)
from ari_app.core.numbers import mask, normalize
from ari_app.core.ports import Clock, CrmLookup, HistoryStore
from ari_app.history.store import HistoryUnavailable

log = logging.getLogger("caseline.router")

CRM_BACKSTOP_S = 0.05  # above the CRM service's own budget, which answers TIMEOUT by itself


@dataclass(frozen=True)
class Routed:
    profile: CallerProfile  # what decide was given (and the decision log keeps)
    decision: Decision
    snapshot: Snapshot
    seconds: float  # identify + decide wall time
    crm_record: CrmRecord | None = None  # the CRM's record as returned, `extra` too (explain)


async def gather_profile(
    raw_caller_id: str | None,
    now: datetime,
    *,
    history: HistoryStore,
    crm_lookup: CrmLookup | None,
    environment: Callable[[str, datetime], EnvironmentFacts],
    windows: Windows,
    history_budget_s: float,
    crm_budget_s: float,
    default_region: str = "RU",
) -> CallerProfile:
    """Normalise the caller ID, ask history and CRM concurrently, each within its own budget.

    Any failure degrades that source instead of failing the call: a caller must always be
    routed somewhere.
    """
    number = normalize(raw_caller_id, default_region)
    if number is None:
        return identify(None, (), CrmFacts(), EnvironmentFacts(), now, windows)

    async def ask_history() -> Sequence[Contact] | BaseException:
        try:
            async with asyncio.timeout(history_budget_s):
                return await history.recent(number, now - windows.old)
        except TimeoutError as e:
            log.warning("history: over budget for %s", mask(number))
            return e
        except Exception as e:  # HistoryUnavailable, or a bug: degrade, never drop the call
            unexpected = not isinstance(e, HistoryUnavailable)
            log.warning("history: %s for %s", type(e).__name__, mask(number), exc_info=unexpected)
            return e

    async def ask_crm() -> CrmFacts:
        if crm_lookup is None:
            return CrmFacts()
        try:
            async with asyncio.timeout(crm_budget_s):
                facts = await crm_lookup(number)
        except TimeoutError:
            return CrmFacts(status=SourceStatus.TIMEOUT, detail="over the per-call budget")
        except Exception as e:
            log.warning("crm: %s for %s", type(e).__name__, mask(number), exc_info=True)
            return CrmFacts(status=SourceStatus.ERROR, detail=type(e).__name__)
        if not isinstance(facts, CrmFacts):
            return CrmFacts(status=SourceStatus.MALFORMED, detail="lookup returned no CrmFacts")
        return facts

    async with asyncio.TaskGroup() as tg:
        history_task = tg.create_task(ask_history())
        crm_task = tg.create_task(ask_crm())
        try:  # CPU-only, well under a millisecond: no need for a thread
            env = environment(number, now)
        except Exception:
            log.warning("environment: failed for %s", mask(number), exc_info=True)
            env = EnvironmentFacts()
    return identify(number, history_task.result(), crm_task.result(), env, now, windows)


class EnvironmentLookup:
    """describe_number over one config snapshot and the region names loaded so far."""

    def __init__(self, snapshot: Snapshot, region_names: RegionNames | None) -> None:
        self.snapshot = snapshot
        self.region_names = region_names

    def __call__(self, number: str, now: datetime) -> EnvironmentFacts:
        namer = self.region_names.namer if self.region_names is not None else None
        return describe_number(number, now, directory=self.snapshot.directory, region_names=namer,
                               numbering=self.snapshot.numbering)


class Router:
    def __init__(self, *, config: LiveConfig, history: HistoryStore, crm: CrmLookup | None,
                 clock: Clock, windows: Windows, history_budget_s: float, crm_budget_s: float,
                 default_region: str, region_names: RegionNames | None = None,
                 crm_cache: Callable[[str], CrmRecord | None] | None = None) -> None:
        self.config = config
        self.history = history
        self.crm = crm
        self.clock = clock
        self.windows = windows
        self.history_budget_s = history_budget_s
        # the CRM service enforces its own budget; ours is a backstop slightly above it
        self.crm_budget_s = crm_budget_s + CRM_BACKSTOP_S
        self.default_region = default_region
        self.region_names = region_names
        self.crm_cache = crm_cache  # what the CRM said recently, read without asking it

    async def route(self, raw_caller_id: str | None, call_id: str = "") -> Routed:
        started = time.perf_counter()
        snapshot = self.config.current
        now = self.clock.now()
        seen = await gather_profile(
            raw_caller_id, now, history=self.history, crm_lookup=self.crm,
            environment=EnvironmentLookup(snapshot, self.region_names), windows=self.windows,
            history_budget_s=self.history_budget_s, crm_budget_s=self.crm_budget_s,
            default_region=self.default_region)
        profile = decide_input(seen)
        decision = decide(profile, snapshot.policy, now)
        return Routed(profile, decision, snapshot, time.perf_counter() - started, seen.crm.record)

    def shed_target(self, raw_caller_id: str | None) -> ShedTarget:
        """Where a call shed by admission control goes, without I/O (core/admission.py): the
        category comes from memory only, the CRM cache and the legal-entity directory."""
        snapshot = self.config.current
        number = normalize(raw_caller_id, self.default_region)
        record = self.crm_cache(number) if number and self.crm_cache else None
        entity = snapshot.directory.lookup(number) if number else None
        return shed_target(snapshot.policy, number, record, entity)
