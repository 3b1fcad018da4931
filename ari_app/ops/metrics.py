"""Prometheus metrics in our own registry (not the process-global one).

A private registry keeps tests independent (each builds its own `Metrics`) and keeps
library defaults (process, GC collectors) out unless the wiring adds them on purpose
(`watch_process`). Label values come from our own enums and reason ids; `_label` still
bounds them so a bug can never explode the series count with caller-controlled text.

Every metric the process exports is defined here, so one file answers "what is on
/metrics". Names follow Prometheus conventions: the `caseline_` prefix (the client
library's standard `process_*` figures keep their usual names), base units (`_seconds`,
`_bytes`), counters ending in `_total`; tests/unit/test_metric_names.py runs
`promtool check metrics` on a live scrape.
"""
from __future__ import annotations

import asyncio
import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import generate_latest

from ari_app.core.admission import REASONS

# A decision is pure CPU plus cached look-ups: most land well under 10 ms, so resolve there.
DECISION_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0, 2.5)
CRM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
# The classic text format that generate_latest() writes (understood by every Prometheus).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LABEL_RE = re.compile(r"[^A-Za-z0-9_.:-]", re.ASCII)


def _label(value: object) -> str:
    text = _LABEL_RE.sub("_", str(value if value is not None else "none"))[:48]
    return text or "none"


class Metrics:
    """Every Caseline metric, bound to one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.calls = Counter("caseline_calls_total", "Calls handled, by history class, service and outcome",
                             ["class", "service", "outcome"], registry=r)
        self.decision_seconds = Histogram("caseline_decision_seconds", "Time to identify and decide one call",
                                          buckets=DECISION_BUCKETS, registry=r)
        self.crm_seconds = Histogram("caseline_crm_seconds", "CRM look-up latency",
                                     buckets=CRM_BUCKETS, registry=r)
        self.crm_errors = Counter("caseline_crm_errors_total", "CRM look-ups that failed, by status",
                                  ["status"], registry=r)
        self.fallbacks = Counter("caseline_fallbacks_total", "Calls routed by a fallback, by reason",
                                 ["reason"], registry=r)
        self.ari_reconnects = Counter("caseline_ari_reconnects_total", "ARI events websocket reconnects",
                                      registry=r)
        self.live_calls = Gauge("caseline_live_calls", "Calls currently handled", registry=r)
        self.agi_sessions = Counter("caseline_agi_sessions_total", "FastAGI sessions, by result",
                                    ["result"], registry=r)
        self.redis_writes_dropped = Counter(
            "caseline_redis_writes_dropped_total",
            "Outcome writes dropped after a Redis outage longer than the buffer", registry=r)
        self.redis_writes_refused = Counter(
            "caseline_redis_writes_refused_total",
            "Outcome writes Redis refused for good (e.g. no permission): dropped, not retried", registry=r)
        self.learning_bad_events = Counter(
            "caseline_learning_bad_events_total",
            "CDR events dropped because their fields do not parse", registry=r)
        self.asterisk_below_min_version = Gauge(
            "caseline_asterisk_below_min_version",
            "1 while Asterisk is older than asterisk.min_versions or its version is not a release "
            "(asterisk.below_min_version: warn), else 0", registry=r)
        # admission control (ops/load.py): what it measures, and what it sheds
        self.calls_shed = Counter(
            "caseline_calls_shed_total",
            "New calls sent straight to the operators' queue by admission control, by reason", ["reason"],
            registry=r)
        self.admission_shedding = Gauge(
            "caseline_admission_shedding", "1 while new calls are shed for this reason, else 0",
            ["reason"], registry=r)
        for reason in REASONS:  # every series present from the start, at 0
            self.calls_shed.labels(reason=reason)
            self.admission_shedding.labels(reason=reason)
        self.calls_shed.labels(reason="dialplan_gate")  # counted from their CDRs
        self.learning_calls_open = Gauge(
            "caseline_learning_calls_open",
            "Calls whose CDRs the learning listener still gathers (bounded; 0 when all is quiet)",
            registry=r)
        self.calls_in_progress = Gauge(
            "caseline_calls_in_progress",
            "Calls in the ARI app plus FastAGI sessions being answered (admission control's count)",
            registry=r)
        self.event_loop_lag = Gauge(
            "caseline_event_loop_lag_seconds", "Mean lateness of a 100 ms timer over the last 1-2 s",
            registry=r)
        self.ari_latency = Gauge(
            "caseline_ari_latency_seconds", "Mean duration of ARI requests over the last 1-2 s",
            registry=r)

    def watch_process(self) -> None:
        """Process figures (RSS, open fds, CPU) and live asyncio tasks: what a soak test
        watches for leaks. Only for the running process: the tasks gauge reads the running loop."""
        ProcessCollector(registry=self.registry)
        Gauge("caseline_asyncio_tasks", "asyncio tasks alive in the process",
              registry=self.registry).set_function(lambda: len(asyncio.all_tasks()))

    # Small helpers so call sites stay one line and labels stay bounded.
    def call(self, cls: object, service: object, outcome: object) -> None:
        self.calls.labels(**{"class": _label(cls), "service": _label(service),
                             "outcome": _label(outcome)}).inc()

    def decision(self, seconds: float) -> None:
        self.decision_seconds.observe(max(0.0, seconds))

    def crm(self, seconds: float, error_status: object | None = None) -> None:
        self.crm_seconds.observe(max(0.0, seconds))
        if error_status is not None:
            self.crm_errors.labels(status=_label(error_status)).inc()

    def fallback(self, reason: object) -> None:
        self.fallbacks.labels(reason=_label(reason)).inc()

    def agi_session(self, result: object) -> None:
        self.agi_sessions.labels(result=_label(result)).inc()

    def render(self) -> bytes:
        """The registry in the Prometheus text format (serve with CONTENT_TYPE)."""
        return generate_latest(self.registry)
