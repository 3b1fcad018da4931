"""Prometheus metrics in our own registry (not the process-global one).

A private registry keeps tests independent (each builds its own `Metrics`) and keeps
library defaults (process, GC collectors) out unless the wiring adds them on purpose.
Label values come from our own enums and reason ids; `_label` still bounds them so a bug
can never explode the series count with caller-controlled text.
"""
from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

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
