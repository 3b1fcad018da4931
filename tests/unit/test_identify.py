from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from ari_app.core.clock import SystemClock
from ari_app.core.history_class import Windows
from ari_app.core.identify import identify
from ari_app.core.models import (
    CallbackKind,
    Contact,
    CrmFacts,
    CrmRecord,
    Direction,
    EnvironmentFacts,
    HistoryClass,
    HistoryFacts,
    SourceStatus,
)
from ari_app.router import gather_profile
from ari_app.history.store import HistoryUnavailable, MemoryHistoryStore

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
W = Windows(callback=timedelta(hours=2), repeat=timedelta(days=1), old=timedelta(days=180))
NUMBER = "+79161234567"
CRM_OK = CrmFacts(status=SourceStatus.OK, record=CrmRecord(client_id="c1", abc="A", responsible="ivanov"))
ENV = EnvironmentFacts(country="RU")


# --- pure identify ----------------------------------------------------------------------

@pytest.mark.parametrize("number", [None, "", "89161234567", "+7916\r\n"])
def test_identify_unidentified(number: str | None) -> None:
    profile = identify(number, [], CRM_OK, ENV, NOW, W)
    assert profile.number is None
    assert profile.history == HistoryFacts(status=SourceStatus.SKIPPED, cls=HistoryClass.NEW)
    assert profile.crm.status is SourceStatus.SKIPPED
    assert profile.environment == EnvironmentFacts()


def test_identify_history_error_is_unavailable_new() -> None:
    profile = identify(NUMBER, HistoryUnavailable("down"), CRM_OK, ENV, NOW, W)
    assert profile.history == HistoryFacts(status=SourceStatus.UNAVAILABLE, cls=HistoryClass.NEW)
    assert (profile.crm, profile.environment) == (CRM_OK, ENV)


def test_identify_combines_sources() -> None:
    contacts = [Contact(NOW - timedelta(minutes=15), Direction.OUTBOUND, True, "petrov", 60)]
    profile = identify(NUMBER, contacts, CRM_OK, ENV, NOW, W)
    assert profile.number == NUMBER
    assert profile.history.cls is HistoryClass.CALLBACK
    assert profile.history.callback_kind is CallbackKind.AFTER_TALK
    assert profile.case_holder == "petrov"  # the manager who just called holds the case


# --- gather_profile ---------------------------------------------------------------------

class Never:
    """A dependency that must not be called."""

    async def recent(self, number: str, since: datetime) -> list[Contact]:
        raise AssertionError("history asked")

    async def record(self, number: str, contact: Contact) -> None:
        raise AssertionError("history written")


async def crm_never(number: str) -> CrmFacts:
    raise AssertionError("crm asked")


def env_never(number: str, now: datetime) -> EnvironmentFacts:
    raise AssertionError("environment asked")


async def crm_ok(number: str) -> CrmFacts:
    return CRM_OK


def env_ok(number: str, now: datetime) -> EnvironmentFacts:
    assert now == NOW
    return ENV


async def hang(*_: object) -> CrmFacts:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


class Hanging(MemoryHistoryStore):
    async def recent(self, number: str, since: datetime) -> list[Contact]:
        return await hang()  # type: ignore[return-value]


class Failing(MemoryHistoryStore):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def recent(self, number: str, since: datetime) -> list[Contact]:
        raise self.error


async def gather(raw: str | None, history: object = None, crm: object = crm_ok, env: object = env_ok,
                 budget_s: float = 1.0):  # type: ignore[no-untyped-def]
    return await gather_profile(
        raw, NOW, history=history if history is not None else MemoryHistoryStore(),  # type: ignore[arg-type]
        crm_lookup=crm, environment=env, windows=W,  # type: ignore[arg-type]
        history_budget_s=budget_s, crm_budget_s=budget_s,
    )


@pytest.mark.parametrize("raw", [None, "", "anonymous", "${SHELL(x)}", "1001"])
async def test_unidentified_makes_no_lookups(raw: str | None) -> None:
    profile = await gather(raw, Never(), crm_never, env_never)
    assert profile.number is None
    assert profile.history.status is SourceStatus.SKIPPED
    assert profile.crm.status is SourceStatus.SKIPPED


async def test_all_sources_answer() -> None:
    store = MemoryHistoryStore()
    await store.record(NUMBER, Contact(NOW - timedelta(minutes=30), Direction.INBOUND, False))
    await store.record(NUMBER, Contact(NOW - timedelta(days=300), Direction.INBOUND, True, "x"))
    profile = await gather("8 (916) 123-45-67", store)
    assert profile.number == NUMBER
    assert profile.history.status is SourceStatus.OK
    assert (profile.history.cls, profile.history.previous_missed) == (HistoryClass.REPEAT, True)
    assert profile.history.owner is None  # the 300-day-old talk is beyond old_window
    assert (profile.crm, profile.environment) == (CRM_OK, ENV)


async def test_history_and_crm_run_concurrently() -> None:
    history_started, crm_started = asyncio.Event(), asyncio.Event()

    class Waiting(MemoryHistoryStore):
        async def recent(self, number: str, since: datetime) -> list[Contact]:
            history_started.set()
            await crm_started.wait()
            return []

    async def crm(number: str) -> CrmFacts:
        crm_started.set()
        await history_started.wait()  # deadlocks (then times out) if run one after the other
        return CRM_OK

    profile = await gather(NUMBER, Waiting(), crm)
    assert profile.history.status is SourceStatus.OK and profile.crm == CRM_OK


@pytest.mark.parametrize("error", [HistoryUnavailable("redis down"), RuntimeError("bug"), TimeoutError()])
async def test_history_failure_degrades(error: Exception) -> None:
    profile = await gather(NUMBER, Failing(error))
    assert profile.history == HistoryFacts(status=SourceStatus.UNAVAILABLE, cls=HistoryClass.NEW)
    assert profile.crm == CRM_OK


async def test_history_timeout_degrades_within_budget() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    profile = await gather(NUMBER, Hanging(), budget_s=0.05)
    assert loop.time() - start < 1.0
    assert profile.history.status is SourceStatus.UNAVAILABLE
    assert profile.crm == CRM_OK


async def test_crm_timeout_error_and_malformed() -> None:
    assert (await gather(NUMBER, crm=hang, budget_s=0.05)).crm.status is SourceStatus.TIMEOUT

    async def broken(number: str) -> CrmFacts:
        raise ValueError("secret=xyz")

    crm = (await gather(NUMBER, crm=broken)).crm
    assert crm.status is SourceStatus.ERROR and "secret" not in crm.detail

    async def odd(number: str) -> CrmFacts:
        return {"status": "ok"}  # type: ignore[return-value]

    assert (await gather(NUMBER, crm=odd)).crm.status is SourceStatus.MALFORMED


async def test_environment_failure_gives_empty_facts() -> None:
    def broken(number: str, now: datetime) -> EnvironmentFacts:
        raise KeyError("x")

    profile = await gather(NUMBER, env=broken)
    assert profile.environment == EnvironmentFacts() and profile.crm == CRM_OK


async def test_cancellation_propagates() -> None:
    started = asyncio.Event()

    class Started(Hanging):
        async def recent(self, number: str, since: datetime) -> list[Contact]:
            started.set()
            return await super().recent(number, since)

    task = asyncio.create_task(gather(NUMBER, Started(), crm=hang, budget_s=30))
    await started.wait()
    task.cancel()  # a hang-up mid-lookup: must not be swallowed as a degraded source
    with pytest.raises(asyncio.CancelledError):
        await task


def test_system_clock_is_aware_utc() -> None:
    assert SystemClock().now().utcoffset() == timedelta(0)
