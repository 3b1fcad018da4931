from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ari_app.core.history_class import FUTURE_TOLERANCE, Windows, classify
from ari_app.core.models import CallbackKind, Contact, Direction, HistoryClass, SourceStatus

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
W = Windows(callback=timedelta(hours=2), repeat=timedelta(days=1), old=timedelta(days=180))
S = timedelta(seconds=1)
IN, OUT = Direction.INBOUND, Direction.OUTBOUND


def c(ago: timedelta, direction: Direction, answered: bool, manager: str | None = None) -> Contact:
    return Contact(at=NOW - ago, direction=direction, answered=answered, manager=manager)


H, D, M = timedelta(hours=1), timedelta(days=1), timedelta(minutes=1)

# (id, contacts, class, callback kind, previous_missed, owner)
CASES = [
    ("never", [], HistoryClass.NEW, None, None, None),
    ("only-beyond-old", [c(181 * D, IN, True, "ivanov")], HistoryClass.NEW, None, None, None),
    ("old-edge-inside", [c(180 * D, IN, True, "ivanov")], HistoryClass.OLD, None, None, "ivanov"),
    ("old-edge-outside", [c(180 * D + S, IN, True, "ivanov")], HistoryClass.NEW, None, None, None),
    ("callback-after-talk", [c(10 * M, OUT, True, "ivanov")], HistoryClass.CALLBACK, CallbackKind.AFTER_TALK, None, "ivanov"),
    ("callback-missed", [c(10 * M, OUT, False, "ivanov")], HistoryClass.CALLBACK, CallbackKind.MISSED, None, "ivanov"),
    ("callback-edge-inside", [c(2 * H, OUT, False, "ivanov")], HistoryClass.CALLBACK, CallbackKind.MISSED, None, "ivanov"),
    ("callback-edge-outside", [c(2 * H + S, OUT, False, "ivanov")], HistoryClass.OLD, None, None, None),
    ("callback-edge-outside-talked", [c(2 * H + S, OUT, True, "ivanov")], HistoryClass.OLD, None, None, "ivanov"),
    ("callback-owner-is-caller", [c(5 * M, OUT, False, "petrov"), c(3 * D, IN, True, "ivanov")],
     HistoryClass.CALLBACK, CallbackKind.MISSED, None, "petrov"),
    ("inbound-after-outbound-is-repeat", [c(1 * H, OUT, True, "ivanov"), c(30 * M, IN, False)],
     HistoryClass.REPEAT, None, True, "ivanov"),
    ("repeat-missed", [c(30 * M, IN, False)], HistoryClass.REPEAT, None, True, None),
    ("repeat-answered", [c(30 * M, IN, True, "petrov")], HistoryClass.REPEAT, None, False, "petrov"),
    ("repeat-edge-inside", [c(D, IN, False)], HistoryClass.REPEAT, None, True, None),
    ("repeat-edge-outside", [c(D + S, IN, False)], HistoryClass.OLD, None, None, None),
    ("repeat-uses-latest-inbound-missed", [c(5 * H, IN, True, "a"), c(1 * H, IN, False)],
     HistoryClass.REPEAT, None, True, "a"),
    ("repeat-uses-latest-inbound-answered", [c(1 * H, IN, True, "a"), c(5 * H, IN, False)],
     HistoryClass.REPEAT, None, False, "a"),
    ("repeat-beats-old-outbound", [c(3 * H, OUT, False, "b"), c(20 * H, IN, False)],
     HistoryClass.REPEAT, None, True, None),
    ("old-outbound-only", [c(10 * D, OUT, False, "b")], HistoryClass.OLD, None, None, None),
    ("owner-latest-answered-any-direction",
     [c(10 * D, IN, True, "a"), c(5 * D, OUT, True, "b"), c(2 * D, IN, False)], HistoryClass.OLD, None, None, "b"),
    ("owner-skips-answered-without-manager", [c(2 * D, IN, True, None), c(9 * D, IN, True, "a")],
     HistoryClass.OLD, None, None, "a"),
    ("owner-not-beyond-old", [c(2 * D, IN, False), c(200 * D, IN, True, "a")], HistoryClass.OLD, None, None, None),
    ("future-within-tolerance-is-now", [c(-2 * M, OUT, True, "a")], HistoryClass.CALLBACK, CallbackKind.AFTER_TALK, None, "a"),
    ("tie-inbound-wins-over-outbound", [c(M, OUT, True, "a"), c(M, IN, False)], HistoryClass.REPEAT, None, True, "a"),
    ("tie-answered-leg-wins", [c(M, IN, False, "b"), c(M, IN, True, "a")], HistoryClass.REPEAT, None, False, "a"),
    ("far-future-ignored", [c(-D, OUT, True, "a")], HistoryClass.NEW, None, None, None),
    ("far-future-does-not-hide-real", [c(-D, OUT, True, "a"), c(3 * D, IN, True, "b")], HistoryClass.OLD, None, None, "b"),
]


@pytest.mark.parametrize(("contacts", "cls", "kind", "missed", "owner"), [x[1:] for x in CASES], ids=[x[0] for x in CASES])
def test_classes(contacts: list[Contact], cls: HistoryClass, kind: CallbackKind | None,
                 missed: bool | None, owner: str | None) -> None:
    for order in (contacts, contacts[::-1]):
        facts = classify(order, NOW, W)
        assert facts.status is SourceStatus.OK
        assert (facts.cls, facts.callback_kind, facts.previous_missed, facts.owner) == (cls, kind, missed, owner)


def test_last_contact_at_is_clamped_to_now() -> None:
    assert classify([c(-2 * M, IN, False)], NOW, W).last_contact_at == NOW
    assert classify([c(3 * D, IN, False), c(5 * D, IN, False)], NOW, W).last_contact_at == NOW - 3 * D
    assert classify([], NOW, W).last_contact_at is None


def test_naive_datetimes_are_utc() -> None:
    naive = Contact(at=(NOW - 10 * M).replace(tzinfo=None), direction=OUT, answered=False, manager="a")
    assert classify([naive], NOW.replace(tzinfo=None), W).cls is HistoryClass.CALLBACK


@pytest.mark.parametrize(
    ("callback", "repeat", "old"),
    [(H, D, H), (3 * D, H, 2 * D), (timedelta(0), H, D), (H, -H, D), (H, D, timedelta(0))],
)
def test_windows_validation(callback: timedelta, repeat: timedelta, old: timedelta) -> None:
    with pytest.raises(ValueError):
        Windows(callback=callback, repeat=repeat, old=old)


def test_windows_longest() -> None:
    assert W.longest == timedelta(days=180)


# --- invariants -------------------------------------------------------------------------

contact_st = st.builds(
    Contact,
    at=st.integers(min_value=-200 * 86400, max_value=86400).map(lambda s: NOW + timedelta(seconds=s)),
    direction=st.sampled_from(list(Direction)),
    answered=st.booleans(),
    manager=st.sampled_from([None, "a", "b", "c"]),
)
windows_st = st.tuples(
    st.integers(1, 10 * 86400), st.integers(1, 10 * 86400), st.integers(0, 200 * 86400)
).map(lambda t: Windows(timedelta(seconds=t[0]), timedelta(seconds=t[1]),
                        timedelta(seconds=max(t[0], t[1]) + t[2])))


@given(st.lists(contact_st, max_size=12), windows_st)
def test_classify_invariants(contacts: list[Contact], w: Windows) -> None:
    facts = classify(contacts, NOW, w)
    assert facts.status is SourceStatus.OK
    assert classify(list(reversed(contacts)), NOW, w) == facts  # order never matters
    valid = [(min(x.at, NOW), x) for x in contacts if x.at <= NOW + FUTURE_TOLERANCE]
    in_old = [(at, x) for at, x in valid if NOW - at <= w.old]
    inbound_recent = [x for at, x in in_old if x.direction is IN and NOW - at <= w.repeat]
    newest = max((at for at, _ in in_old), default=None)
    assert facts.last_contact_at == newest
    if facts.cls is HistoryClass.CALLBACK:
        latest = [x for at, x in in_old if at == newest]
        assert NOW - newest <= w.callback
        assert any(x.direction is OUT and x.manager == facts.owner
                   and (facts.callback_kind is CallbackKind.AFTER_TALK) == x.answered for x in latest)
    else:
        assert facts.callback_kind is None
        assert facts.owner is None or any(x.answered and x.manager == facts.owner for _, x in in_old)
    if facts.cls is HistoryClass.REPEAT:
        assert inbound_recent and facts.previous_missed is not None
    if facts.cls is HistoryClass.OLD:
        assert in_old and not inbound_recent
    if facts.cls is HistoryClass.NEW:
        assert not in_old and facts.owner is None
    if facts.cls is not HistoryClass.REPEAT:
        assert facts.previous_missed is None
