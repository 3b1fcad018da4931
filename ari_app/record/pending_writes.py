"""Writes to Redis that failed, kept and retried until Redis is back, within bounds.

While Redis is down calls are still routed (history unknown: treated as new) and their
outcomes wait here. Bounds: at most MAX_ENTRIES writes and MAX_AGE_S seconds; beyond them
the oldest are dropped and counted (caseline_redis_writes_dropped_total), because memory
must stay bounded during a long outage. Retries run every RETRY_S seconds.

Only transient errors are retried (no connection, timeouts, and the errors Redis gives while
it cannot write for now: OOM, READONLY, LOADING, BUSY, TRYAGAIN, MASTERDOWN). Anything else
(an ACL user without XADD: NOPERM, a wrong type) would fail the same way forever and hold
every later write behind it, so that write is dropped, logged and counted
(caseline_redis_writes_refused_total) and the next one goes ahead.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from redis.exceptions import (
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ari_app.history.store import HistoryUnavailable

log = logging.getLogger("caseline.record.pending_writes")

MAX_ENTRIES = 10_000
MAX_AGE_S = 3600.0
RETRY_S = 1.0
WRITE_ERRORS = (RedisError, OSError, HistoryUnavailable, TimeoutError)
# ConnectionError covers LOADING (BusyLoadingError); ClusterDownError covers MASTERDOWN
_TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError,
              OutOfMemoryError, ReadOnlyError, TryAgainError, ClusterDownError)


def is_transient(error: BaseException) -> bool:
    """Will the same write work once Redis is back (or has room, or a primary, ...)?"""
    if isinstance(error, HistoryUnavailable):  # the store's wrapper: judge what it wraps
        return error.__cause__ is None or is_transient(error.__cause__)
    if isinstance(error, _TRANSIENT):
        return True
    # BUSY (a script running too long) has no class of its own in redis-py
    return isinstance(error, ResponseError) and str(error).startswith("BUSY")

Write = Callable[[], Awaitable[object]]


class PendingWrites:
    def __init__(self, *, max_entries: int = MAX_ENTRIES, max_age_s: float = MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic,
                 on_dropped: Callable[[int], None] | None = None,
                 on_refused: Callable[[int], None] | None = None) -> None:
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self.clock = clock
        self.on_dropped = on_dropped
        self.on_refused = on_refused
        self.queue: deque[tuple[float, str, Write]] = deque()
        self.written_late = 0
        self.dropped = 0
        self.refused = 0  # failed for good: dropped at once, never retried

    async def write(self, what: str, write: Write) -> bool:
        """Try now; on a transient error keep it for later. True if written now."""
        if not self.queue:
            try:
                await write()
                return True
            except Exception as e:  # noqa: BLE001 - sorted by is_transient(); the rest is dropped
                if not is_transient(e):
                    self._refuse(what, e)
                    return False
                log.warning("Redis write failed (%s): %s kept for retry", type(e).__name__, what)
        self._keep(what, write)
        return False

    def _refuse(self, what: str, error: BaseException) -> None:
        self.refused += 1
        log.error("Redis refused a write for good (%s: %s): %s dropped, not retried",
                  type(error).__name__, str(error)[:200], what,
                  exc_info=not isinstance(error, WRITE_ERRORS))  # not Redis's answer: a bug
        if self.on_refused:
            self.on_refused(1)

    def _keep(self, what: str, write: Write) -> None:
        self.queue.append((self.clock(), what, write))
        self._trim()

    def _trim(self) -> None:
        dropped = 0
        now = self.clock()
        while self.queue and (len(self.queue) > self.max_entries
                              or now - self.queue[0][0] > self.max_age_s):
            self.queue.popleft()
            dropped += 1
        if dropped:
            self.dropped += dropped
            log.error("Redis outage: %d pending writes dropped (bounds: %d writes, %.0f s)",
                      dropped, self.max_entries, self.max_age_s)
            if self.on_dropped:
                self.on_dropped(dropped)

    async def flush(self) -> int:
        """Write what waits, oldest first; stop at the first transient failure (a write that
        fails for good is dropped and the next one tried). Returns the count written."""
        self._trim()
        written = 0
        while self.queue:
            _, what, write = self.queue[0]
            try:
                await write()
            except Exception as e:  # noqa: BLE001 - a bug in one write must not stop the retries
                if is_transient(e):
                    break
                self.queue.popleft()
                self._refuse(what, e)
                continue
            self.queue.popleft()
            written += 1
        if written:
            self.written_late += written
            log.info("Redis back: %d pending writes done, %d still waiting", written, len(self.queue))
        return written

    async def run(self) -> None:
        """Retry forever (cancel to stop)."""
        while True:
            await asyncio.sleep(RETRY_S)
            if self.queue:
                await self.flush()
