"""identify: the caller's profile from history, CRM and the environment.

`identify` is pure; `gather_profile` does the I/O around it: both sources are asked
concurrently, each within the budget, and any failure degrades that source instead of
failing the call (a caller must always be routed somewhere).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from ari_app.history.store import HistoryStore, HistoryUnavailable

from ari_app.core.clock import Clock, SystemClock
from ari_app.core.history_class import Windows, classify
from ari_app.core.models import (
    CallerProfile,
    Contact,
    CrmFacts,
    EnvironmentFacts,
    HistoryClass,
    HistoryFacts,
    SourceStatus,
)
from ari_app.core.numbers import is_e164, mask, normalize

__all__ = ["Clock", "SystemClock", "gather_profile", "identify"]

log = logging.getLogger(__name__)

_SKIPPED_HISTORY = HistoryFacts(status=SourceStatus.SKIPPED, cls=HistoryClass.NEW)
_UNAVAILABLE_HISTORY = HistoryFacts(status=SourceStatus.UNAVAILABLE, cls=HistoryClass.NEW)


def identify(
    number: str | None,
    contacts_or_error: Sequence[Contact] | BaseException,
    crm: CrmFacts,
    env: EnvironmentFacts,
    now: datetime,
    windows: Windows,
) -> CallerProfile:
    """Combine the three sources. A number that is not strict E.164 counts as unidentified."""
    if not is_e164(number):
        return CallerProfile(number=None, history=_SKIPPED_HISTORY, crm=CrmFacts(status=SourceStatus.SKIPPED))
    if isinstance(contacts_or_error, BaseException):
        history = _UNAVAILABLE_HISTORY
    else:
        history = classify(contacts_or_error, now, windows)
    return CallerProfile(number=number, history=history, crm=crm, environment=env)


async def gather_profile(
    raw_caller_id: str | None,
    *,
    history: HistoryStore,
    crm_lookup: Callable[[str], Awaitable[CrmFacts]],
    environment: Callable[[str, datetime], EnvironmentFacts],
    clock: Clock,
    windows: Windows,
    budget_s: float,
    default_region: str = "RU",
) -> CallerProfile:
    """Normalise the caller ID, ask history and CRM concurrently (each within `budget_s`)."""
    now = clock.now()
    number = normalize(raw_caller_id, default_region)
    if number is None:
        return identify(None, (), CrmFacts(), EnvironmentFacts(), now, windows)

    async def ask_history() -> Sequence[Contact] | BaseException:
        try:
            async with asyncio.timeout(budget_s):
                return await history.recent(number, now - windows.old)
        except TimeoutError as e:
            log.warning("history: over budget for %s", mask(number))
            return e
        except Exception as e:  # HistoryUnavailable, or a bug: degrade, never drop the call
            unexpected = not isinstance(e, HistoryUnavailable)
            log.warning("history: %s for %s", type(e).__name__, mask(number), exc_info=unexpected)
            return e

    async def ask_crm() -> CrmFacts:
        try:
            async with asyncio.timeout(budget_s):
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

