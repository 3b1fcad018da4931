"""Replay: a dry run of a routing change on recent real calls.

Every decision-log entry keeps the profile decide saw and the call's time, so a past call
is re-decided under the running policy and under a candidate, at its own time, with no CRM
or history look-up. Calls are counted, and those routed differently are grouped by change
(service, first target, priority) with counts and example call ids. The CLI
(`caseline replay`) and the ops API (`POST /replay`) both use this module.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from ari_app.core.decide import decide
from ari_app.core.models import Decision, StepKind
from ari_app.core.policy import Policy
from ari_app.record.outcomes import DECISION_LOG, read_entry
from ari_app.record.profile_json import profile_from_json

PAGE = 1000  # stream entries per XRANGE round trip
EXAMPLES = 5  # call ids kept per change


@dataclass(frozen=True, order=True)
class Routing:
    """What a change is grouped by."""

    service: str
    first_target: str
    priority: int

    def __str__(self) -> str:
        return f"{self.service} {self.first_target} prio {self.priority}"

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "first_target": self.first_target, "priority": self.priority}


def routing_of(decision: Decision) -> Routing:
    """Service, the first step that is not a recording ("manager:mgr1", "queue:operators"), priority."""
    first = next((s for s in decision.route if s.kind is not StepKind.PLAYBACK), None)
    target = "-" if first is None else (f"{first.kind}:{first.target}" if first.target else str(first.kind))
    return Routing(str(decision.service), target, decision.priority)


@dataclass
class Change:
    before: Routing
    after: Routing
    count: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class ReplayReport:
    since: datetime
    calls: int = 0  # decision-log entries since then
    replayed: int = 0  # of which re-decided (the others predate stored profiles, or are unreadable)
    without_profile: int = 0
    changed: int = 0
    changes: dict[tuple[Routing, Routing], Change] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "calls": self.calls,
            "replayed": self.replayed,
            "without_profile": self.without_profile,
            "changed": self.changed,
            "unchanged": self.replayed - self.changed,
            "changes": [{"from": c.before.as_dict(), "to": c.after.as_dict(), "count": c.count,
                         "examples": c.examples} for c in self.sorted_changes()],
        }

    def sorted_changes(self) -> list[Change]:
        return sorted(self.changes.values(), key=lambda c: (-c.count, c.before, c.after))

    def text(self) -> str:
        lines = [f"calls since {self.since.isoformat(timespec='seconds')}: {self.calls} "
                 f"(replayed {self.replayed}, without a stored profile {self.without_profile})",
                 f"routed differently: {self.changed}"]
        for c in self.sorted_changes():
            lines.append(f"  {c.count:>5}  {c.before}  ->  {c.after}   e.g. {', '.join(c.examples)}")
        return "\n".join(lines)


def replay(entries: Iterable[Mapping[str, str]], running: Policy, candidate: Policy,
           since: datetime) -> ReplayReport:
    """Re-decide each entry under both policies at the call's own time; pure."""
    report = ReplayReport(since)
    for entry in entries:
        report.calls += 1
        try:
            profile = profile_from_json(entry["profile"])
            at = datetime.fromisoformat(entry["at"])
        except (KeyError, ValueError, TypeError):  # written before profiles were kept, or damaged
            report.without_profile += 1
            continue
        report.replayed += 1
        before, after = routing_of(decide(profile, running, at)), routing_of(decide(profile, candidate, at))
        if before == after:
            continue
        report.changed += 1
        change = report.changes.setdefault((before, after), Change(before, after))
        change.count += 1
        if len(change.examples) < EXAMPLES:
            change.examples.append(entry.get("call_id", "?"))
    return report


async def entries_since(redis: Redis, since: datetime) -> list[dict[str, Any]]:
    """Decision-log entries written since `since`, oldest first (the stream is capped)."""
    start = f"{max(0, int(since.timestamp() * 1000))}-0"
    out: list[dict[str, Any]] = []
    while True:
        rows = await redis.xrange(DECISION_LOG, min=start, max="+", count=PAGE)
        for _, fields in rows:
            out.append(read_entry(fields))
        if len(rows) < PAGE:
            return out
        start = "(" + _text(rows[-1][0])  # exclusive: after the last one read


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
