"""CrmService: budget, circuit breaker, cache, invalidation, single-flight; settings."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ari_app.config.files import ConfigError
from ari_app.core.models import CrmRecord, SourceStatus
from ari_app.crm import CrmService, CrmSettings, build_crm, load_crm_settings
from ari_app.crm.base import CrmBadAnswer, CrmClient, CrmErrorAnswer, CrmUnavailable
from ari_app.crm.breaker import BreakerState, CircuitBreaker
from ari_app.crm.cache import TtlLru
from ari_app.crm.records import build_record

A = "+79161234567"
B = "+79031112233"
REC_A = build_record(client_id="C-1", abc="A", responsible="mgr1")
REC_B = build_record(client_id="C-2", abc="b", responsible="mgr2", open_claims=1, open_deals=3)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeCrm:
    """answers[number]: a record, None (unknown) or an exception to raise.

    If gates[number] is set, lookup waits on it first (events, no sleeps).
    """

    def __init__(self, answers: dict[str, object] | None = None) -> None:
        self.answers: dict[str, object] = dict(answers or {})
        self.gates: dict[str, asyncio.Event] = {}
        self.started: dict[str, asyncio.Event] = {}
        self.calls: list[str] = []

    async def lookup(self, number: str) -> CrmRecord | None:
        self.calls.append(number)
        self.started.setdefault(number, asyncio.Event()).set()
        gate = self.gates.get(number)
        if gate is not None:
            await gate.wait()
        answer = self.answers.get(number)
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[return-value]

    async def lookup_company(self, company_id: str) -> CrmRecord | None:
        return await self.lookup(f"company:{company_id}")  # answers, gates and calls by this key


def service(crm: CrmClient | None, clock: Clock | None = None, **kw: object) -> CrmService:
    return CrmService(crm, clock=clock or Clock(), **kw)  # type: ignore[arg-type]


def test_fake_satisfies_protocol() -> None:
    assert isinstance(FakeCrm(), CrmClient)


# -- statuses -----------------------------------------------------------------------------


async def test_no_number_is_skipped_without_asking() -> None:
    crm = FakeCrm({A: REC_A})
    facts = await service(crm).facts(None)
    assert facts.status is SourceStatus.SKIPPED and facts.record is None
    assert crm.calls == []


async def test_disabled_crm_and_non_e164_are_skipped() -> None:
    assert (await service(None).facts(A)).status is SourceStatus.SKIPPED
    crm = FakeCrm()
    assert (await service(crm).facts("89161234567")).status is SourceStatus.SKIPPED
    assert crm.calls == []


async def test_ok_and_unknown() -> None:
    svc = service(FakeCrm({A: REC_A, B: None}))
    ok = await svc.facts(A)
    assert ok.status is SourceStatus.OK and ok.record == REC_A and ok.detail == ""
    unknown = await svc.facts(B)
    assert unknown.status is SourceStatus.UNKNOWN and unknown.record is None and unknown.detail


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (CrmUnavailable("request failed (ClientConnectorError)"), SourceStatus.UNAVAILABLE),
        (CrmErrorAnswer("HTTP 500"), SourceStatus.ERROR),
        (CrmBadAnswer("open_deals: expected a non-negative integer"), SourceStatus.MALFORMED),
        (ValueError("adapter bug"), SourceStatus.ERROR),
    ],
)
async def test_errors_map_to_statuses_with_detail(error: Exception, status: SourceStatus) -> None:
    facts = await service(FakeCrm({A: error})).facts(A)
    assert facts.status is status and facts.record is None
    assert facts.detail and len(facts.detail) < 120


async def test_adapter_returning_garbage_is_malformed() -> None:
    facts = await service(FakeCrm({A: {"id": 1}})).facts(A)
    assert facts.status is SourceStatus.MALFORMED


async def test_budget_timeout() -> None:
    crm = FakeCrm({A: REC_A})
    crm.gates[A] = asyncio.Event()  # never set: the CRM hangs
    svc = service(crm, budget_ms=50)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    facts = await svc.facts(A)
    assert facts.status is SourceStatus.TIMEOUT and "50 ms" in facts.detail
    assert loop.time() - t0 < 1.0
    assert svc.breaker.consecutive_failures == 1  # the timeout counts once, in the shared request
    await svc.aclose()


# -- circuit breaker ------------------------------------------------------------------------


async def test_breaker_opens_after_consecutive_failures_and_stops_asking() -> None:
    clock = Clock()
    crm = FakeCrm({A: CrmUnavailable("down")})
    svc = service(crm, clock, breaker_failures=5, breaker_cooldown_s=30)
    for _ in range(5):
        assert (await svc.facts(A)).status is SourceStatus.UNAVAILABLE
    assert svc.breaker.state is BreakerState.OPEN
    facts = await svc.facts(A)
    assert facts.status is SourceStatus.BREAKER_OPEN and "30 s" in facts.detail
    assert len(crm.calls) == 5  # no request while open
    clock.now += 29.9
    assert (await svc.facts(B)).status is SourceStatus.BREAKER_OPEN
    assert len(crm.calls) == 5


async def test_success_resets_the_failure_count() -> None:
    crm = FakeCrm({A: CrmUnavailable("down"), B: REC_B})
    svc = service(crm, breaker_failures=3, cache_ttl_s=0)
    for number in (A, A, B, A, A):
        await svc.facts(number)
    assert svc.breaker.state is BreakerState.CLOSED


async def test_half_open_lets_one_probe_through_and_success_closes() -> None:
    clock = Clock()
    crm = FakeCrm({A: CrmErrorAnswer("HTTP 500")})
    svc = service(crm, clock, breaker_failures=2, breaker_cooldown_s=30)
    await svc.facts(A)
    await svc.facts(A)
    assert svc.breaker.state is BreakerState.OPEN
    clock.now += 30
    assert svc.breaker.state is BreakerState.HALF_OPEN

    crm.answers[A] = REC_A
    crm.gates[A] = asyncio.Event()
    crm.started.pop(A, None)
    probe = asyncio.create_task(svc.facts(A))
    await crm.started.setdefault(A, asyncio.Event()).wait()
    # While the probe is out, other numbers are not asked...
    assert (await svc.facts(B)).status is SourceStatus.BREAKER_OPEN
    assert B not in crm.calls
    crm.gates[A].set()
    assert (await probe).status is SourceStatus.OK
    assert svc.breaker.state is BreakerState.CLOSED
    crm.answers[B] = REC_B
    assert (await svc.facts(B)).status is SourceStatus.OK


async def test_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = Clock()
    crm = FakeCrm({A: CrmUnavailable("down")})
    svc = service(crm, clock, breaker_failures=1, breaker_cooldown_s=30)
    await svc.facts(A)
    clock.now += 31
    assert (await svc.facts(A)).status is SourceStatus.UNAVAILABLE  # the probe
    assert svc.breaker.state is BreakerState.OPEN
    clock.now += 29
    assert (await svc.facts(A)).status is SourceStatus.BREAKER_OPEN
    assert len(crm.calls) == 2


async def test_timeouts_open_the_breaker() -> None:
    crm = FakeCrm({A: REC_A})
    crm.gates[A] = asyncio.Event()
    svc = service(crm, budget_ms=20, breaker_failures=2)
    assert (await svc.facts(A)).status is SourceStatus.TIMEOUT
    assert (await svc.facts(A)).status is SourceStatus.TIMEOUT
    assert (await svc.facts(A)).status is SourceStatus.BREAKER_OPEN
    assert len(crm.calls) == 2
    await svc.aclose()


def test_breaker_unit_transitions_and_stuck_probe() -> None:
    clock = Clock()
    br = CircuitBreaker(failures=2, cooldown_s=10, clock=clock)
    assert br.allow() and br.state is BreakerState.CLOSED and br.retry_in() == 0
    br.failure()
    assert br.state is BreakerState.CLOSED
    br.failure()
    assert br.state is BreakerState.OPEN and not br.allow()
    assert br.retry_in() == pytest.approx(10)
    br.failure()  # a late failure of an older request does not extend the cool-down
    clock.now += 10
    assert br.allow()  # the probe
    assert not br.allow()  # only one
    clock.now += 10  # the probe's outcome never came back (cancelled): allow another
    assert br.allow()
    br.success()
    assert br.state is BreakerState.CLOSED and br.consecutive_failures == 0
    with pytest.raises(ValueError):
        CircuitBreaker(failures=0)


# -- cache --------------------------------------------------------------------------------


async def test_records_are_cached_for_ttl() -> None:
    clock = Clock()
    crm = FakeCrm({A: REC_A})
    svc = service(crm, clock, cache_ttl_s=60)
    await svc.facts(A)
    clock.now += 59
    hit = await svc.facts(A)
    assert hit.status is SourceStatus.OK and hit.record == REC_A and hit.detail == "cached"
    assert len(crm.calls) == 1 and svc.stats["cache_hits"] == 1
    clock.now += 1
    await svc.facts(A)
    assert len(crm.calls) == 2


async def test_unknown_is_cached_shorter() -> None:
    clock = Clock()
    crm = FakeCrm({A: None})
    svc = service(crm, clock, cache_ttl_s=60, unknown_ttl_s=10)
    await svc.facts(A)
    clock.now += 9
    assert (await svc.facts(A)).status is SourceStatus.UNKNOWN
    assert len(crm.calls) == 1
    clock.now += 1
    await svc.facts(A)
    assert len(crm.calls) == 2


async def test_failures_are_never_cached() -> None:
    crm = FakeCrm({A: CrmBadAnswer("not JSON")})
    svc = service(crm)
    await svc.facts(A)
    crm.answers[A] = REC_A
    assert (await svc.facts(A)).status is SourceStatus.OK
    assert len(crm.calls) == 2


async def test_invalidate_and_invalidate_all() -> None:
    crm = FakeCrm({A: REC_A, B: REC_B})
    svc = service(crm)
    await svc.facts(A)
    await svc.facts(B)
    svc.invalidate(A)
    await svc.facts(A)
    await svc.facts(B)
    assert crm.calls == [A, B, A]
    svc.invalidate_all()
    assert svc.cache_size == 0
    await svc.facts(A)
    await svc.facts(B)
    assert crm.calls == [A, B, A, A, B]


async def test_invalidate_during_flight_does_not_cache_the_stale_answer() -> None:
    crm = FakeCrm({A: REC_A})
    crm.gates[A] = asyncio.Event()
    svc = service(crm)
    first = asyncio.create_task(svc.facts(A))
    await crm.started.setdefault(A, asyncio.Event()).wait()
    svc.invalidate(A)
    crm.gates[A].set()
    assert (await first).record == REC_A  # the waiting caller still gets its answer
    assert svc.cache_size == 0
    await svc.facts(A)
    assert len(crm.calls) == 2


def test_lru_is_bounded() -> None:
    clock = Clock()
    cache: TtlLru[str] = TtlLru(max_entries=2, clock=clock)
    cache.put("a", "1", 60)
    cache.put("b", "2", 60)
    assert cache.get("a") == "1"  # a is now the most recent
    cache.put("c", "3", 60)
    assert TtlLru.is_miss(cache.get("b")) and cache.get("a") == "1" and cache.get("c") == "3"
    cache.put("d", None, 0)  # ttl 0: not stored
    assert len(cache) == 2


def test_expired_entries_at_the_old_end_go_when_new_ones_come() -> None:
    clock = Clock()
    cache: TtlLru[str] = TtlLru(max_entries=100, clock=clock)
    cache.put("a", "1", 10)
    cache.put("b", "2", 60)
    clock.now += 11  # a has expired, b has not
    cache.put("c", "3", 60)
    assert len(cache) == 2 and cache.get("b") == "2" and cache.get("c") == "3"


async def test_service_cache_is_bounded() -> None:
    crm = FakeCrm({A: REC_A, B: REC_B})
    svc = service(crm, cache_max_entries=1)
    await svc.facts(A)
    await svc.facts(B)
    await svc.facts(A)
    assert crm.calls == [A, B, A] and svc.cache_size == 1


# -- single-flight and concurrency --------------------------------------------------------


async def test_concurrent_lookups_of_one_number_share_one_request() -> None:
    crm = FakeCrm({A: REC_A})
    crm.gates[A] = asyncio.Event()
    svc = service(crm)
    callers = [asyncio.create_task(svc.facts(A)) for _ in range(10)]
    await crm.started.setdefault(A, asyncio.Event()).wait()
    await asyncio.sleep(0)  # let the other callers join (a yield, not a timing assumption)
    crm.gates[A].set()
    results = await asyncio.gather(*callers)
    assert all(r.status is SourceStatus.OK and r.record == REC_A for r in results)
    assert crm.calls == [A]
    assert svc.stats["requests"] == 1 and svc.stats["joined"] == 9


async def test_slow_number_does_not_serialise_others() -> None:
    crm = FakeCrm({A: REC_A, B: REC_B})
    crm.gates[A] = asyncio.Event()
    svc = service(crm, budget_ms=5000)
    slow = asyncio.create_task(svc.facts(A))
    await crm.started.setdefault(A, asyncio.Event()).wait()
    fast = await svc.facts(B)  # answered while A is still pending
    assert fast.status is SourceStatus.OK and not slow.done()
    crm.gates[A].set()
    assert (await slow).status is SourceStatus.OK


async def test_caller_cancellation_does_not_cancel_the_shared_request() -> None:
    crm = FakeCrm({A: REC_A})
    crm.gates[A] = asyncio.Event()
    svc = service(crm)
    first = asyncio.create_task(svc.facts(A))
    await crm.started.setdefault(A, asyncio.Event()).wait()
    second = asyncio.create_task(svc.facts(A))
    await asyncio.sleep(0)
    first.cancel()  # this caller hung up
    with pytest.raises(asyncio.CancelledError):
        await first
    crm.gates[A].set()
    assert (await second).status is SourceStatus.OK
    assert crm.calls == [A]


# -- hooks, reload, settings ----------------------------------------------------------------


async def test_on_result_hook_and_stats() -> None:
    seen: list[tuple[str, float]] = []
    svc = service(FakeCrm({A: REC_A, B: CrmUnavailable("down")}), on_result=lambda s, t: seen.append((s, t)))
    await svc.facts(A)
    await svc.facts(A)
    await svc.facts(B)
    await svc.facts(None)
    assert [s for s, _ in seen] == ["ok", "ok", "unavailable", "skipped"]
    assert all(t >= 0 for _, t in seen)
    assert svc.stats["ok"] == 2 and svc.stats["calls"] == 4 and svc.stats["requests"] == 2


async def test_failing_hook_does_not_break_the_call(caplog: pytest.LogCaptureFixture) -> None:
    def boom(status: str, seconds: float) -> None:
        raise RuntimeError("metrics down")

    svc = service(FakeCrm({A: REC_A}), on_result=boom)
    assert (await svc.facts(A)).status is SourceStatus.OK
    assert "on_result hook failed" in caplog.text


CLIENTS = """
clients:
  - id: C-1
    numbers: ["+79161234567"]
    abc: A
"""


async def test_reload_drops_cache_and_broken_file_keeps_old(tmp_path: Path) -> None:
    (tmp_path / "clients.yaml").write_text(CLIENTS, encoding="utf-8")
    settings = CrmSettings(adapter="file", cache_ttl_s=60)
    svc = CrmService.from_settings(settings, build_crm(settings, tmp_path))
    assert (await svc.facts(A)).record.abc == "A"  # type: ignore[union-attr]
    (tmp_path / "clients.yaml").write_text(CLIENTS.replace("abc: A", "abc: B"), encoding="utf-8")
    assert svc.reload() == 1
    assert (await svc.facts(A)).record.abc == "B"  # type: ignore[union-attr]
    (tmp_path / "clients.yaml").write_text(CLIENTS.replace("abc: A", "abc: Q"), encoding="utf-8")
    with pytest.raises(ConfigError):
        svc.reload()
    assert (await svc.facts(A)).record.abc == "B"  # type: ignore[union-attr]
    assert service(FakeCrm()).reload() is None  # not reloadable
    await svc.aclose()


def test_settings_defaults() -> None:
    s = CrmSettings()
    assert (s.adapter, s.budget_ms, s.cache_ttl_s, s.unknown_ttl_s) == ("none", 300, 60, 10)
    assert (s.breaker.failures, s.breaker.cooldown_s, s.cache_max_entries) == (5, 30, 100_000)
    assert build_crm(s, Path(".")) is None
    svc = CrmService.from_settings(CrmSettings(budget_ms=120, breaker={"failures": 7}), None)
    assert svc.budget_s == pytest.approx(0.12) and svc.breaker.threshold == 7


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("adapter: http\n", ""),
        ("adapter: http\nhttp: {url_template: 'http://crm/clients/'}\n", "http.url_template"),
        ("adapter: http\nhttp: {url_template: 'https://u:p@crm/{number}'}\n", "http.url_template"),
        ("adapter: http\nhttp: {url_template: 'https://crm/{number}', headers: {Authorization: x}}\n", "http.headers"),
        ("adapter: http\nhttp: {url_template: 'https://crm/{number}', fields: {colour: x}}\n", "http.fields"),
        ("adapter: soap\n", "adapter"),
        ("budget_ms: 0\n", "budget_ms"),
        ("breaker: {failures: 0}\n", "breaker.failures"),
        ("timezone: Mars/Olympus\n", "timezone"),
        ("bitrix24: {order_categories: [1], claim_categories: [1]}\n", "bitrix24"),
        ("bitrix24: {webhook_url: 'https://x/rest/1/t/'}\n", "bitrix24.webhook_url"),
    ],
)
def test_settings_errors_name_file_and_key(tmp_path: Path, yaml_text: str, key: str) -> None:
    path = tmp_path / "crm.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_crm_settings(path)
    assert info.value.file == str(path)
    assert info.value.key == key
    assert str(path) in str(info.value)
