"""The console's pictures (GET /stats): calls per hour by class and by service, and the calls
that did not go as planned, counted from the decision log. Pure: entries in, series out.

- fallbacks: calls where at least one step was busy, unanswered or unavailable and the
  route moved on;
- sheds: calls Caseline gave up on and handed to the dialplan (outcome `dialplan`: an
  internal error or a lost channel; the dialplan's operators' queue takes them);
- degraded: calls decided without one of their sources (history or CRM down or late).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

HOUR_S = 3600
SHED_OUTCOMES = frozenset({"dialplan"})
_SOURCE_OK = frozenset({"ok", "unknown", "skipped", ""})  # "unknown": the CRM has no record


def hourly(entries: Iterable[Mapping[str, str]], now: datetime, hours: int = 24) -> dict[str, Any]:
    """Series over the last `hours` whole hours up to now's (bucket starts in epoch seconds)."""
    end = int(now.timestamp()) // HOUR_S * HOUR_S  # start of the current hour
    first = end - (hours - 1) * HOUR_S
    starts = [first + i * HOUR_S for i in range(hours)]
    by_class: dict[str, list[int]] = {}
    by_service: dict[str, list[int]] = {}
    fallbacks, sheds, degraded = [0] * hours, [0] * hours, [0] * hours
    total = 0
    for entry in entries:
        try:
            at = datetime.fromisoformat(entry.get("at", ""))
        except ValueError:
            continue
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        i = (int(at.timestamp()) - first) // HOUR_S
        if not 0 <= i < hours:
            continue
        total += 1
        by_class.setdefault(entry.get("class") or "?", [0] * hours)[i] += 1
        by_service.setdefault(entry.get("service") or "?", [0] * hours)[i] += 1
        if entry.get("fallbacks"):
            fallbacks[i] += 1
        if entry.get("outcome") in SHED_OUTCOMES:
            sheds[i] += 1
        if entry.get("history", "") not in _SOURCE_OK or entry.get("crm", "") not in _SOURCE_OK:
            degraded[i] += 1
    return {
        "since": datetime.fromtimestamp(first, UTC).isoformat(),
        "hours": starts,
        "total": total,
        "by_class": dict(sorted(by_class.items())),
        "by_service": dict(sorted(by_service.items())),
        "fallbacks": fallbacks,
        "sheds": sheds,
        "degraded": degraded,
    }


def window_start(now: datetime, hours: int) -> datetime:
    """The first bucket's start: read the log from here."""
    end = int(now.timestamp()) // HOUR_S * HOUR_S
    return datetime.fromtimestamp(end, UTC) - timedelta(hours=hours - 1)
