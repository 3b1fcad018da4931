"""Watching calls for ops: metrics, one JSON line per decision and per outcome, and the
console's live feed."""
from __future__ import annotations

import time
from collections.abc import Callable

from ari_app.core.models import Outcome
from ari_app.ops.live_events import LiveFeed
from ari_app.ops.logs import log_decision, log_outcome
from ari_app.ops.metrics import Metrics
from ari_app.router import Routed


class CallObserver:
    def __init__(self, metrics: Metrics, live_count: Callable[[], int] = lambda: 0,
                 feed: LiveFeed | None = None) -> None:
        self.metrics = metrics
        self.live_count = live_count  # calls in progress, the finishing one included
        self.feed = feed

    def decided(self, call_id: str, routed: Routed) -> None:
        self.metrics.decision(routed.seconds)
        self.metrics.live_calls.set(self.live_count())
        log_decision(call_id, routed.profile, routed.decision, routed.seconds)
        if self.feed is not None:  # the call started when identify began
            self.feed.decided(call_id, started=time.time() - routed.seconds)

    def finished(self, call_id: str, routed: Routed, outcome: Outcome) -> None:
        self.metrics.call(routed.profile.history.cls, routed.decision.service, outcome.result)
        for reason in outcome.fallbacks:
            self.metrics.fallback(reason)
        self.metrics.live_calls.set(max(0, self.live_count() - 1))
        log_outcome(call_id, {"result": outcome.result, "answered_by": outcome.answered_by,
                              "talk_s": outcome.talk_s, "steps": outcome.steps,
                              "fallbacks": outcome.fallbacks})
        if self.feed is not None:
            self.feed.ended(call_id, str(outcome.result))
