"""Admission control's measuring half: the load now, the gate's answer (core/admission.py),
what it sheds counted and shown on /metrics, its changes logged.

Every measure costs O(1): the call count is read when asked, each ARI request adds one
sample (ari/http.py `on_latency`), and one task samples the event loop's lag ten times a
second. Both fronts ask `check_new_call()` once per new call, before any work for it.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ari_app.core.admission import REASONS, Bounds, Gate, Load, WindowMean
from ari_app.ops.metrics import Metrics

log = logging.getLogger("caseline.admission")

LAG_INTERVAL_S = 0.1  # fine enough to see a backlog, ten cheap wake-ups a second
WINDOW_S = 1.0  # lag and latency are means over the last 1-2 windows


class Admission:
    def __init__(self, bounds: Bounds, calls_in_progress: Callable[[], int], *,
                 enabled: bool = True, metrics: Metrics | None = None,
                 window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[str | None], None] | None = None) -> None:
        self.enabled = enabled
        self.on_change = on_change  # the dialplan gate (stasis/admission_gate.py)
        self.gate = Gate(bounds)
        self.calls_in_progress = calls_in_progress  # bound late: the fronts exist after us
        self.metrics = metrics
        self.loop_lag = WindowMean(window_s)
        self.ari_latency = WindowMean(window_s)
        self.clock = clock
        self.shed = 0  # since the gate last closed: for the log line when it opens again
        self.lag_samples = 0  # taken by the monitor so far (it is alive)
        self._reason: str | None = None

    def ari_request(self, seconds: float) -> None:
        self.ari_latency.add(seconds, self.clock())

    def lag_sample(self, seconds: float) -> None:
        self.loop_lag.add(seconds, self.clock())
        self.lag_samples += 1

    def refresh(self) -> str | None:
        """Measure, update the gate and the gauges; the reason new calls are shed now, or None."""
        now = self.clock()
        load = Load(self.calls_in_progress(), self.loop_lag.value(now), self.ari_latency.value(now))
        reason = self.gate.update(load, now) if self.enabled else None
        if reason != self._reason:
            self._changed(reason, load)
        if self.metrics is not None:
            m = self.metrics
            m.calls_in_progress.set(load.calls_in_progress)
            m.event_loop_lag.set(load.loop_lag_s)
            m.ari_latency.set(load.ari_latency_s)
            for name in REASONS:
                m.admission_shedding.labels(reason=name).set(
                    1 if self.enabled and self.gate.shedding(name) else 0)
        return reason

    def check_new_call(self) -> str | None:
        """None: route the new call; else the reason to shed it (counted)."""
        reason = self.refresh()
        if reason is not None:
            self.shed += 1
            if self.metrics is not None:
                self.metrics.calls_shed.labels(reason=reason).inc()
        return reason

    def _changed(self, reason: str | None, load: Load) -> None:
        # one line per change, not per call: under overload a line per call is more load
        figures = (f"calls in progress {load.calls_in_progress}, loop lag {load.loop_lag_s * 1000:.1f} ms, "
                   f"ARI latency {load.ari_latency_s * 1000:.1f} ms")
        if reason is None:
            log.warning("admission: routing new calls again after shedding %d (%s)", self.shed, figures)
            self.shed = 0
        else:
            log.warning("admission: new calls go straight to the operators' queue: %s over its bound (%s)",
                        reason, figures)
        self._reason = reason
        if self.on_change is not None:
            self.on_change(reason)


async def watch_loop_lag(admission: Admission, interval_s: float = LAG_INTERVAL_S) -> None:
    """Sleep a fixed interval, count how late the wake-up is; keeps the gate and gauges fresh
    between calls too (a gate that opened is logged and shown without waiting for a call)."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        admission.lag_sample(max(0.0, loop.time() - due))
        admission.refresh()
