"""A circuit breaker: stop asking a CRM that keeps failing, probe it again after a cool-down.

closed --N consecutive failures--> open --cooldown--> half-open --probe ok--> closed
                                    ^                      |
                                    +----probe failed------+
While open, calls are answered BREAKER_OPEN at once instead of each waiting out the budget.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, failures: int = 5, cooldown_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1 or cooldown_s <= 0:
            raise ValueError("failures must be >= 1 and cooldown_s > 0")
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self._opened_at = 0.0
        self._probe_at: float | None = None  # when the half-open probe was let through

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.cooldown_s:
            return BreakerState.HALF_OPEN
        return self._state

    def retry_in(self) -> float:
        """Seconds until a probe may go through (0 when closed)."""
        if self._state is BreakerState.CLOSED:
            return 0.0
        start = self._probe_at if self._probe_at is not None else self._opened_at
        return max(0.0, start + self.cooldown_s - self._clock())

    def allow(self) -> bool:
        """May a request go out now? In half-open, only one probe at a time."""
        if self._state is BreakerState.CLOSED:
            return True
        now = self._clock()
        if self._probe_at is not None:
            # A probe is out. If its outcome never came back (cancelled), allow another
            # after a further cool-down rather than staying stuck open forever.
            if now - self._probe_at < self.cooldown_s:
                return False
        elif now - self._opened_at < self.cooldown_s:
            return False
        self._state = BreakerState.HALF_OPEN
        self._probe_at = now
        return True

    def success(self) -> None:
        self._state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self._probe_at = None

    def failure(self) -> None:
        self.consecutive_failures += 1
        # Already open: a late failure of an older request must not extend the cool-down.
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self.consecutive_failures >= self.threshold
        ):
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
            self._probe_at = None
