"""The caller's class from the PBX's own history: callback > repeat > old > new.

Pure: contacts in, HistoryFacts out. Call it *before* the current call is recorded, or the
current call would count as its own "repeat".
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ari_app.core.models import (
    CallbackKind,
    Contact,
    Direction,
    HistoryClass,
    HistoryFacts,
    SourceStatus,
)

# Clocks of the PBX, Redis and this process drift a little: a contact a few minutes "in the
# future" is treated as happening now. Anything further ahead is bad data and is ignored,
# so one corrupt entry cannot pin a number's class forever.
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Windows:
    """How far back each class looks. A contact exactly `window` old is still inside it."""

    callback: timedelta
    repeat: timedelta
    old: timedelta

    def __post_init__(self) -> None:
        for name in ("callback", "repeat", "old"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value <= timedelta(0):
                raise ValueError(f"{name} window must be a positive timedelta")
        if self.old < self.repeat:
            raise ValueError("old window must be >= repeat window")
        if self.old < self.callback:
            raise ValueError("old window must be >= callback window")

    @property
    def longest(self) -> timedelta:
        """How long history must be kept (the store's retention)."""
        return self.old


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _newest_first(pair: tuple[datetime, Contact]) -> tuple[object, ...]:
    """A total order, so the input order never matters. On equal times an inbound call
    counts as the later one (glare is not a callback) and an answered one beats a missed one
    (two CDR legs of one queue call)."""
    at, c = pair
    return (at, _utc(c.at), c.direction is Direction.INBOUND, c.answered, c.manager or "", c.duration_s)


def classify(contacts: Sequence[Contact], now: datetime, windows: Windows) -> HistoryFacts:
    """Classify a number from its contacts (any order). Status is always OK."""
    now = _utc(now)
    horizon = now + FUTURE_TOLERANCE
    # (effective time, contact), newest first; future-within-tolerance is clamped to now.
    recent = sorted(
        ((min(_utc(c.at), now), c) for c in contacts if _utc(c.at) <= horizon),
        key=_newest_first,
        reverse=True,
    )
    recent = [(at, c) for at, c in recent if now - at <= windows.old]
    if not recent:
        return HistoryFacts(status=SourceStatus.OK, cls=HistoryClass.NEW)

    last_at, last = recent[0]
    if last.direction is Direction.OUTBOUND and now - last_at <= windows.callback:
        return HistoryFacts(
            status=SourceStatus.OK,
            cls=HistoryClass.CALLBACK,
            callback_kind=CallbackKind.AFTER_TALK if last.answered else CallbackKind.MISSED,
            owner=last.manager,
            last_contact_at=last_at,
            owner_contact=last,
        )

    taught = next((c for _, c in recent if c.answered and c.manager), None)
    owner = taught.manager if taught else None
    inbound = next(
        (c for at, c in recent if c.direction is Direction.INBOUND and now - at <= windows.repeat),
        None,
    )
    if inbound is not None:
        return HistoryFacts(
            status=SourceStatus.OK,
            cls=HistoryClass.REPEAT,
            previous_missed=not inbound.answered,
            owner=owner,
            last_contact_at=last_at,
            owner_contact=taught,
        )
    return HistoryFacts(
        status=SourceStatus.OK, cls=HistoryClass.OLD, owner=owner, last_contact_at=last_at,
        owner_contact=taught,
    )
