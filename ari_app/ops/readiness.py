"""Readiness for the open /readyz: cached for a moment, and computed by one run at a time.

A check can cost a dependency something: the AMI check logs in to Asterisk, whose default
`authlimit` is 50 concurrent logins. An endpoint anyone can call must not turn a burst of
requests into a burst of logins, so the result (ready or not) is kept for `ttl_s`, and
requests that arrive while a run is under way wait for that run instead of starting theirs.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger("caseline.ops")

Check = Callable[[], Awaitable[bool]]


class Readiness:
    def __init__(self, checks: Mapping[str, Check], *, timeout: float, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.checks = dict(checks)
        self.timeout = timeout
        self.ttl_s = ttl_s
        self.clock = clock
        self.runs = 0
        self._result: dict[str, bool] | None = None
        self._expires = 0.0
        self._running: asyncio.Task[dict[str, bool]] | None = None

    async def status(self) -> dict[str, bool]:
        """{check name: ready}, at most `ttl_s` old."""
        if self._result is not None and self.clock() < self._expires:
            return self._result
        if self._running is None:
            self._running = asyncio.create_task(self._run(), name="readiness-checks")
        # shield: a client that goes away must not cancel the run the others wait for
        return await asyncio.shield(self._running)

    async def _run(self) -> dict[str, bool]:
        self.runs += 1
        try:
            names = list(self.checks)
            results = await asyncio.gather(*(self._check(self.checks[n]) for n in names))
            self._result = dict(zip(names, results, strict=True))
            self._expires = self.clock() + self.ttl_s
            return self._result
        finally:
            self._running = None

    async def _check(self, check: Check) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                return bool(await check()) is True
        except Exception as e:  # noqa: BLE001 - a failing or slow check is "not ready", never a 500
            log.warning("readiness check failed: %s", type(e).__name__)
            return False
