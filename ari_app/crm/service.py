"""CrmService: what the call path uses. Budget, single-flight, cache and circuit breaker.

`facts()` never raises for CRM trouble and never waits longer than the budget: a slow or
broken CRM degrades one input of the decision, it must never hold a ringing caller.

- Single-flight: concurrent calls for the same number share one request (a task); other
  numbers get their own, so a slow answer for one number does not serialise the rest.
- The shared request runs under the budget of the call that started it; callers wait
  for it (joiners only for what is left of it), so a hanging CRM costs at most one budget
  per number and its timeout counts once towards the breaker.
- Cache: records for `cache_ttl_s`, "unknown" for `unknown_ttl_s`; failures are never cached.
  A request whose number was invalidated while in flight does not write its answer back.

`company_facts(id)` asks for a company by its id the same way (same breaker; cached under
"company:<id>", which no E.164 number can be), within the budget its caller has left.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ari_app.config.crm_settings import CrmSettings
from ari_app.core.models import CrmFacts, CrmRecord, SourceStatus
from ari_app.core.numbers import is_e164, mask
from ari_app.crm.base import (
    COMPANY_ID_RE,
    CrmBadAnswer,
    CrmClient,
    CrmError,
    CrmErrorAnswer,
    CrmUnavailable,
)
from ari_app.crm.breaker import BreakerState, CircuitBreaker
from ari_app.crm.cache import TtlLru

log = logging.getLogger("caseline.crm")

ResultHook = Callable[[str, float], None]  # (SourceStatus value, seconds spent in facts())

# Callers stop waiting this long after the shared request's deadline. Normally the request
# ends itself at the deadline (and reports TIMEOUT); this only guards against an adapter
# that swallows cancellation.
GRACE_S = 0.02
COMPANY_KEY = "company:"  # cache and single-flight key prefix of company look-ups


@dataclass(slots=True)
class _Flight:
    task: asyncio.Task[CrmFacts]
    deadline: float  # loop time


class CrmService:
    def __init__(
        self,
        client: CrmClient | None,
        *,
        budget_ms: int = 300,
        cache_ttl_s: float = 60.0,
        unknown_ttl_s: float = 10.0,
        cache_max_entries: int = 100_000,
        breaker_failures: int = 5,
        breaker_cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_result: ResultHook | None = None,
    ) -> None:
        self.client = client
        self.budget_s = budget_ms / 1000
        self.cache_ttl_s = cache_ttl_s
        self.unknown_ttl_s = unknown_ttl_s
        self.breaker = CircuitBreaker(breaker_failures, breaker_cooldown_s, clock)
        self.on_result = on_result
        # Counters for metrics: "calls", "requests", "cache_hits", "joined" and one per status.
        self.stats: Counter[str] = Counter()
        self._cache: TtlLru[CrmRecord | None] = TtlLru(cache_max_entries, clock)
        self._inflight: dict[str, _Flight] = {}
        self._tasks: set[asyncio.Task[CrmFacts]] = set()  # strong refs, incl. orphaned ones

    @classmethod
    def from_settings(
        cls,
        settings: CrmSettings,
        client: CrmClient | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_result: ResultHook | None = None,
    ) -> CrmService:
        return cls(
            client,
            budget_ms=settings.budget_ms,
            cache_ttl_s=settings.cache_ttl_s,
            unknown_ttl_s=settings.unknown_ttl_s,
            cache_max_entries=settings.cache_max_entries,
            breaker_failures=settings.breaker.failures,
            breaker_cooldown_s=settings.breaker.cooldown_s,
            clock=clock,
            on_result=on_result,
        )

    # -- the call path ---------------------------------------------------------------

    async def facts(self, number: str | None) -> CrmFacts:
        started = time.perf_counter()
        result = await self._facts(number)
        self._report(result.status, time.perf_counter() - started)
        return result

    async def _facts(self, number: str | None) -> CrmFacts:
        self.stats["calls"] += 1
        if number is None:
            return CrmFacts(SourceStatus.SKIPPED, detail="no caller number")
        if self.client is None:
            return CrmFacts(SourceStatus.SKIPPED, detail="CRM disabled")
        if not is_e164(number):  # never send something else to a CRM
            return CrmFacts(SourceStatus.SKIPPED, detail="number is not E.164")
        client = self.client
        return await self._ask(number, lambda: client.lookup(number), self.budget_s, f"crm-lookup {mask(number)}")

    async def company_facts(self, company_id: str, *, budget_s: float | None = None) -> CrmFacts:
        """What the CRM says about a company (by its id), within `budget_s` (default: the
        per-call budget); never raises, like facts()."""
        started = time.perf_counter()
        result = await self._company_facts(company_id, self.budget_s if budget_s is None else budget_s)
        self._report(result.status, time.perf_counter() - started)
        return result

    async def _company_facts(self, company_id: str, budget_s: float) -> CrmFacts:
        self.stats["calls"] += 1
        if self.client is None:
            return CrmFacts(SourceStatus.SKIPPED, detail="CRM disabled")
        if not isinstance(company_id, str) or not COMPANY_ID_RE.fullmatch(company_id):
            return CrmFacts(SourceStatus.SKIPPED, detail="not a company id")
        client = self.client
        return await self._ask(COMPANY_KEY + company_id, lambda: client.lookup_company(company_id), budget_s,
                               f"crm-company {company_id}")

    async def _ask(self, key: str, fetch: Callable[[], Awaitable[CrmRecord | None]], budget_s: float,
                   name: str) -> CrmFacts:
        """The cached answer, a share of the request in flight for `key`, or a new request."""
        cached = self._cache.get(key)
        if not TtlLru.is_miss(cached):
            self.stats["cache_hits"] += 1
            return self._answer(cached, "cached")  # type: ignore[arg-type]

        flight = self._inflight.get(key)
        if flight is not None:
            self.stats["joined"] += 1
        else:
            if not self.breaker.allow():
                return CrmFacts(
                    SourceStatus.BREAKER_OPEN,
                    detail=f"CRM failing, next probe in {self.breaker.retry_in():.0f} s",
                )
            deadline = asyncio.get_running_loop().time() + budget_s
            task = asyncio.create_task(self._fetch(key, fetch, deadline), name=name)
            flight = self._inflight[key] = _Flight(task, deadline)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            async with asyncio.timeout_at(flight.deadline + GRACE_S):
                # shield: a caller who hangs up must not cancel the request others share.
                return await asyncio.shield(flight.task)
        except TimeoutError:
            return self._timeout()

    async def _fetch(self, key: str, fetch: Callable[[], Awaitable[CrmRecord | None]],
                     deadline: float) -> CrmFacts:
        """One request to the CRM; never raises (its outcome is what callers share).
        `key` is a number, or COMPANY_KEY + a company id."""
        self.stats["requests"] += 1
        me = asyncio.current_task()
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    record = await fetch()
            except TimeoutError:
                return self._failed(self._timeout())
            except CrmBadAnswer as e:
                return self._failed(CrmFacts(SourceStatus.MALFORMED, detail=str(e)))
            except CrmErrorAnswer as e:
                return self._failed(CrmFacts(SourceStatus.ERROR, detail=str(e)))
            except CrmUnavailable as e:
                return self._failed(CrmFacts(SourceStatus.UNAVAILABLE, detail=str(e)))
            except CrmError as e:
                return self._failed(CrmFacts(SourceStatus.ERROR, detail=str(e)))
            except Exception as e:  # an adapter bug must not take the call down
                log.error("CRM adapter %r failed", self.client, exc_info=True)
                return self._failed(CrmFacts(SourceStatus.ERROR, detail=f"adapter error ({type(e).__name__})"))
            if record is not None and not isinstance(record, CrmRecord):
                return self._failed(CrmFacts(SourceStatus.MALFORMED, detail="adapter returned a non-record"))
            self._succeeded()
            if self._is_current(key, me):  # not invalidated meanwhile
                self._cache.put(key, record, self.cache_ttl_s if record else self.unknown_ttl_s)
            return self._answer(record, "")
        finally:
            if self._is_current(key, me):
                del self._inflight[key]

    def _is_current(self, number: str, task: asyncio.Task[CrmFacts] | None) -> bool:
        flight = self._inflight.get(number)
        return flight is not None and flight.task is task

    # -- cache control -----------------------------------------------------------------

    def cached(self, number: str) -> CrmRecord | None:
        """The record the cache holds for `number`, without asking the CRM (admission control's
        priority for a shed call); None when none is cached."""
        value = self._cache.get(number)
        return None if TtlLru.is_miss(value) else value  # type: ignore[return-value]

    def invalidate(self, number: str) -> None:
        """Forget `number`: the next call asks the CRM (e.g. on a CRM "client changed" hook)."""
        self._cache.pop(number)
        self._inflight.pop(number, None)  # its answer may predate the change: don't cache it

    def invalidate_all(self) -> None:
        self._cache.clear()
        self._inflight.clear()

    def reload(self) -> int | None:
        """Reload a reloadable adapter (the file directory) and drop the cache.

        Raises ConfigError from the adapter; then the old directory and cache stay.
        """
        reload = getattr(self.client, "reload", None)
        if reload is None:
            return None
        count = reload()
        self.invalidate_all()
        return count

    def prepare_reload(self) -> Callable[[], int | None]:
        """A reload in two steps (the config reload's): the adapter reads its source now,
        blocking, in any thread (ConfigError keeps everything); the returned function swaps
        it in and drops the cache, and must run on the event loop that uses the cache."""
        prepare = getattr(self.client, "prepare_reload", None)
        reload = getattr(self.client, "reload", None)
        if prepare is not None:
            swap_client = prepare()
        elif reload is not None:  # an adapter without two steps swaps by itself, here
            count = reload()
            swap_client = lambda: count
        else:
            return lambda: None  # nothing to reload (HTTP, Bitrix24): the cache stays, as in reload()

        def swap() -> int | None:
            count = swap_client()
            self.invalidate_all()
            return count
        return swap

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._inflight.clear()
        close = getattr(self.client, "aclose", None)
        if close is not None:
            await close()

    # -- helpers -----------------------------------------------------------------------

    @property
    def cache_size(self) -> int:
        return len(self._cache)

    def _answer(self, record: CrmRecord | None, detail: str) -> CrmFacts:
        if record is None:
            return CrmFacts(SourceStatus.UNKNOWN, detail=detail or "not in CRM")
        return CrmFacts(SourceStatus.OK, record=record, detail=detail)

    def _timeout(self) -> CrmFacts:
        return CrmFacts(SourceStatus.TIMEOUT, detail=f"no answer within {self.budget_s * 1000:.0f} ms")

    def _failed(self, facts: CrmFacts) -> CrmFacts:
        before = self.breaker.state
        self.breaker.failure()
        if before is not BreakerState.OPEN and self.breaker.state is BreakerState.OPEN:
            log.warning(
                "CRM breaker open after %d consecutive failures (last: %s %s)",
                self.breaker.consecutive_failures, facts.status.value, facts.detail,
            )
        return facts

    def _succeeded(self) -> None:
        if self.breaker.state is not BreakerState.CLOSED:
            log.info("CRM breaker closed: the CRM answers again")
        self.breaker.success()

    def _report(self, status: SourceStatus, seconds: float) -> None:
        self.stats[status.value] += 1
        if self.on_result is not None:
            try:
                self.on_result(status.value, seconds)
            except Exception:  # metrics must never break a call
                log.exception("CRM on_result hook failed")


from ari_app.crm.factory import build_crm  # noqa: E402  re-exported: the factory sits next to the service

__all__ = ["CrmService", "ResultHook", "build_crm"]
