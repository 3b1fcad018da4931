"""Watching calls for ops: metrics, one JSON line per decision and per outcome, /calls."""
from __future__ import annotations

from typing import Any

from ari_app.core.numbers import mask
from ari_app.ops.logs import log_decision, log_outcome
from ari_app.ops.metrics import Metrics
from ari_app.router import Routed
from ari_app.stasis.app import Call, StasisApp
from ari_app.stasis.execute import Outcome


class CallObserver:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.app: StasisApp | None = None

    def decided(self, call: Call, routed: Routed) -> None:
        self.metrics.decision(routed.seconds)
        self.metrics.live_calls.set(len(self.app.calls) if self.app else 0)
        log_decision(call.id, routed.profile, routed.decision, routed.seconds)

    def finished(self, call: Call, routed: Routed, outcome: Outcome) -> None:
        self.metrics.call(routed.profile.history.cls, routed.decision.service, outcome.result)
        for reason in outcome.fallbacks:
            self.metrics.fallback(reason)
        self.metrics.live_calls.set(max(0, len(self.app.calls) - 1) if self.app else 0)
        log_outcome(call.id, {"result": outcome.result, "answered_by": outcome.answered_by,
                              "talk_s": outcome.talk_s, "steps": outcome.steps,
                              "fallbacks": outcome.fallbacks})

    def live_calls(self) -> list[dict[str, Any]]:
        calls = []
        for call in list(self.app.calls.values()) if self.app else []:
            routed: Routed | None = getattr(call, "routed", None)
            entry: dict[str, Any] = {"call_id": call.id, "step": call.step}
            if routed is not None:
                entry.update({
                    "number": mask(routed.profile.number) if routed.profile.number else "unidentified",
                    "class": str(routed.profile.history.cls),
                    "service": str(routed.decision.service),
                    "priority": routed.decision.priority,
                    "route": [f"{s.kind}:{s.target}" for s in routed.decision.route],
                })
            calls.append(entry)
        return calls
