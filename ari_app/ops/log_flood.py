"""A logging filter against floods of one message.

When the process ran out of descriptors, asyncio logged "socket.accept() out of system
resource" with a traceback 234,939 times in 35 s (100 MB): the log became useless and its
writes were load of their own. This filter lets the first `burst` identical warnings or
errors per `interval_s` through, drops and counts the rest, and, on the first one let
through in a later interval, says how many were dropped. INFO and below always pass: the
decision and outcome lines are data, one per call, and must never be sampled.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

_MAX_KEYS = 1000  # distinct messages tracked; older windows are forgotten beyond that


class RepeatFilter(logging.Filter):
    def __init__(self, burst: int = 10, interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst = burst
        self.interval_s = interval_s
        self.clock = clock
        self.suppressed = 0  # in total, for metrics
        # (logger, level, message) -> [window start, passed in window, dropped in window]
        self._windows: dict[tuple[str, int, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, record.getMessage())
        now = self.clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.interval_s:
            dropped = int(window[2]) if window is not None else 0
            self._windows.pop(key, None)  # re-inserted last: the dict stays in age order
            self._windows[key] = [now, 1, 0]
            if len(self._windows) > _MAX_KEYS:
                del self._windows[next(iter(self._windows))]
            if dropped:
                record.msg, record.args = "%s [%d identical messages suppressed in the previous %.0f s]", (
                    key[2], dropped, self.interval_s)
            return True
        if window[1] < self.burst:
            window[1] += 1
            return True
        window[2] += 1
        self.suppressed += 1
        return False
