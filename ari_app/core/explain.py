"""explain: a decision told in words for ops staff (`caseline explain`, the console)."""
from __future__ import annotations

from ari_app.core.models import Decision, StepKind


def explain(decision: Decision) -> str:
    """Multi-line, human-readable account of a decision for ops staff."""
    lines = [f"Service: {decision.service}, priority {decision.priority}" + (", callback requested" if decision.callback_request else ""), "Route:"]
    for i, s in enumerate(decision.route):
        if s.kind in (StepKind.MANAGER, StepKind.SUPERVISOR):
            text = f"ring {s.kind} {s.target} for {s.ring_timeout_s} s (busy -> {s.on_busy}, no answer -> {s.on_no_answer}, unavailable -> {s.on_unavailable})"
        elif s.kind is StepKind.PLAYBACK:
            text = f"play {s.target}, then {i + 1}"
        elif s.kind is StepKind.HANGUP:
            text = "hang up [end]"
        else:
            text = f"{s.kind} {s.target} [end]"
        lines.append(f"  {i}. {text}")
    lines.append("Why:")
    lines.extend(f"  [{r.rule}] {r.text}" for r in decision.reasons)
    return "\n".join(lines)
