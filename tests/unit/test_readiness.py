"""/readyz is open: a burst of requests must not become a burst of checks.

Reproduced before: 300 GET /readyz gave 300 AMI logins, 171 at once (Asterisk's default
authlimit is 50). Now the checks run once per cache period, shared by concurrent requests.
"""
from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp

from ari_app.ops.api import READY_CACHE_S, OpsServer, create_app
from ari_app.ops.metrics import Metrics
from ari_app.ops.readiness import Readiness


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Checks:
    """Counting checks that answer once `gate` is open (like an AMI login taking a while)."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.ready = True

    def check(self, name: str):
        async def check() -> bool:
            self.runs[name] += 1
            self.started.set()
            await self.gate.wait()
            return self.ready
        return check

    def all(self) -> dict[str, object]:
        return {name: self.check(name) for name in ("ari", "redis", "ami")}


async def nothing(*_: object) -> None:
    return None


async def test_100_concurrent_readyz_requests_run_each_check_once():
    checks = Checks()
    app = create_app(token="t", metrics=Metrics(), checks=checks.all(), reload=nothing,
                     live_calls=list, invalidate=nothing, ready_cache_s=60)
    server = OpsServer(app, port=0, max_connections=200)
    await server.start()
    url = f"http://127.0.0.1:{server.port}/readyz"
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            async def get() -> int:
                async with http.get(url) as answer:
                    return answer.status

            requests = [asyncio.create_task(get()) for _ in range(100)]
            checks.gate.set()
            async with asyncio.timeout(10):
                assert await asyncio.gather(*requests) == [200] * 100
    finally:
        await server.close()
    assert checks.runs == {"ari": 1, "redis": 1, "ami": 1}


async def test_concurrent_callers_share_one_run_and_the_result_is_kept_for_the_period():
    checks, clock = Checks(), Clock()
    readiness = Readiness(checks.all(), timeout=5, ttl_s=2.0, clock=clock)
    waiting = [asyncio.create_task(readiness.status()) for _ in range(50)]
    await checks.started.wait()
    checks.gate.set()
    assert await asyncio.gather(*waiting) == [{"ari": True, "redis": True, "ami": True}] * 50
    assert readiness.runs == 1

    checks.ready = False
    clock.now = 1.9
    assert (await readiness.status())["ami"] is True and readiness.runs == 1  # still cached
    clock.now = 2.0
    assert await readiness.status() == {"ari": False, "redis": False, "ami": False}
    assert readiness.runs == 2 and checks.runs["ami"] == 2


async def test_a_caller_that_goes_away_does_not_cancel_the_shared_run():
    checks = Checks()
    readiness = Readiness(checks.all(), timeout=5, ttl_s=2.0)
    first = asyncio.create_task(readiness.status())
    await checks.started.wait()  # `first` started the run and waits for it
    second = asyncio.create_task(readiness.status())
    first.cancel()
    checks.gate.set()
    assert (await second)["redis"] is True and readiness.runs == 1


def test_the_default_cache_period_is_a_few_seconds():
    assert 1 <= READY_CACHE_S <= 5
