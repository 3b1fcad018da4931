"""The Router gives history and CRM a budget each (history_budget_ms, crm.budget_ms).

It used to wait max(history, CRM + 50 ms) for both, so a slow Redis held every call for the
CRM's budget (300 ms by default) instead of history_budget_ms (150 ms). The slowness below is
simulated latency (asyncio.sleep inside the fake sources), not synchronisation.
"""
from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from ari_app.config.history_settings import HistorySettings
from ari_app.config.live import LiveConfig
from ari_app.core.clock import SystemClock
from ari_app.core.models import Contact, CrmFacts, SourceStatus
from ari_app.history.store import MemoryHistoryStore
from ari_app.router import CRM_BACKSTOP_S, Router

CONFIG = Path(__file__).resolve().parents[2] / "config"
NUMBER = "+79161234567"
HISTORY_BUDGET_S = 0.03
CRM_BUDGET_S = 0.5
LATE = 0.2  # after the history budget, well within the CRM's


class SlowHistory(MemoryHistoryStore):
    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.answered = False

    async def recent(self, number: str, since: datetime) -> list[Contact]:
        await asyncio.sleep(self.delay_s)
        self.answered = True
        return []


def crm_answering_after(delay_s: float):
    async def lookup(number: str) -> CrmFacts:
        await asyncio.sleep(delay_s)
        return CrmFacts(status=SourceStatus.UNKNOWN, detail="not in CRM")
    return lookup


def router(history: MemoryHistoryStore, crm) -> Router:  # type: ignore[no-untyped-def]
    return Router(config=LiveConfig(CONFIG / "routing.yaml", CONFIG / "legal_entities.yaml"),
                  history=history, crm=crm, clock=SystemClock(), windows=HistorySettings().windows(),
                  history_budget_s=HISTORY_BUDGET_S, crm_budget_s=CRM_BUDGET_S, default_region="RU")


async def test_history_later_than_its_budget_degrades_although_the_crm_budget_is_longer():
    history = SlowHistory(LATE)
    routed = await router(history, crm_answering_after(LATE)).route(NUMBER, "call-1")
    assert routed.profile.history.status is SourceStatus.UNAVAILABLE  # not waited for
    assert not history.answered
    assert routed.profile.crm.status is SourceStatus.UNKNOWN  # the CRM, as slow, still counted


async def test_the_crm_keeps_its_own_budget_plus_the_backstop():
    r = router(SlowHistory(0), crm_answering_after(60))
    assert r.history_budget_s == HISTORY_BUDGET_S
    assert r.crm_budget_s == CRM_BUDGET_S + CRM_BACKSTOP_S
    loop = asyncio.get_running_loop()
    started = loop.time()
    routed = await r.route(NUMBER, "call-2")
    assert routed.profile.crm.status is SourceStatus.TIMEOUT
    assert routed.profile.history.status is SourceStatus.OK
    assert CRM_BUDGET_S <= loop.time() - started < CRM_BUDGET_S + 1.0
