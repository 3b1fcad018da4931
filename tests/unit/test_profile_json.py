"""The profile kept in each decision-log entry: profile -> JSON -> profile gives an equal object."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ari_app.core.models import (
    CallbackKind,
    CallerProfile,
    CrmFacts,
    CrmRecord,
    Decision,
    EnvironmentFacts,
    HistoryClass,
    HistoryFacts,
    LegalEntity,
    Outcome,
    OutcomeResult,
    Reason,
    RouteStep,
    Service,
    SourceStatus,
    StepKind,
)
from ari_app.record.outcomes import decision_entry
from ari_app.record.profile_json import profile_from_json, profile_to_json

FULL = CallerProfile(
    number="+79161234567",
    history=HistoryFacts(SourceStatus.OK, HistoryClass.CALLBACK, CallbackKind.AFTER_TALK, True, "mgr3",
                         datetime(2026, 6, 15, 9, 30, 5, 120000, tzinfo=UTC)),
    crm=CrmFacts(SourceStatus.OK, CrmRecord("C-1", "ООО «Ромашка»", "active", "A", "mgr1", 1, 2, 3, True, True),
                 "fine"),
    environment=EnvironmentFacts("RU", "Moscow", "Europe/Moscow", "MTS", 3.0,
                                 LegalEntity("Holding", "mgr2", "B", "h", "Parent", "p"), "numbering_plan"),
)

TEXT = st.text(max_size=12)
OPT = st.none() | TEXT
WHEN = st.none() | st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1),
                                timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]))
PROFILES = st.builds(
    CallerProfile,
    number=st.none() | st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True),
    history=st.builds(HistoryFacts, st.sampled_from(SourceStatus), st.sampled_from(HistoryClass),
                      st.none() | st.sampled_from(CallbackKind), st.none() | st.booleans(), OPT, WHEN),
    crm=st.builds(CrmFacts, st.sampled_from(SourceStatus),
                  st.none() | st.builds(CrmRecord, TEXT, TEXT, TEXT, OPT, OPT, st.integers(0, 10**6),
                                        st.integers(0, 99), st.integers(0, 99), st.booleans(),
                                        st.booleans()),
                  TEXT),
    environment=st.builds(EnvironmentFacts, OPT, OPT, OPT, OPT,
                          st.none() | st.floats(-14, 14) | st.integers(-14, 14),
                          st.none() | st.builds(LegalEntity, TEXT, OPT, OPT, OPT, OPT, OPT), OPT),
)


def test_full_profile_round_trips() -> None:
    assert profile_from_json(profile_to_json(FULL)) == FULL


def test_empty_profile_is_compact() -> None:
    text = profile_to_json(CallerProfile(number=None))
    assert json.loads(text) == {"v": 1, "number": None}
    assert profile_from_json(text) == CallerProfile(number=None)


@given(PROFILES)
def test_any_profile_round_trips(profile: CallerProfile) -> None:
    assert profile_from_json(profile_to_json(profile)) == profile


@pytest.mark.parametrize("text", [
    "[]", '{"v": 2}', '{"v": 1, "history": {"cls": "vip"}}', '{"v": 1, "number": 7}',
    '{"v": 1, "crm": {"record": {"open_deals": true}}}', '{"v": 1, "environment": {"utc_offset_hours": "3"}}',
    '{"v": 1, "history": {"last_contact_at": "2026-06-15T10:00:00"}}', "not json",
])
def test_damaged_profiles_are_value_errors(text: str) -> None:
    with pytest.raises(ValueError):
        profile_from_json(text)


def _entry(profile: CallerProfile, *, mask_numbers: bool) -> dict[str, str]:
    decision = Decision(Service.OPERATOR, 20, (RouteStep(StepKind.QUEUE, "operators"),), (Reason("default", "x"),))
    return decision_entry("call-1", datetime(2026, 6, 15, 9, 0, tzinfo=UTC), profile, decision,
                          Outcome(OutcomeResult.QUEUE), 1.0, mask_numbers=mask_numbers)


def test_decision_log_entry_keeps_the_profile() -> None:
    assert profile_from_json(_entry(FULL, mask_numbers=False)["profile"]) == FULL


def test_decision_log_entry_masks_the_profile_number_like_the_entry() -> None:
    entry = _entry(FULL, mask_numbers=True)
    kept = profile_from_json(entry["profile"])
    assert kept.number == entry["number"] == "***4567"
    assert kept.crm == FULL.crm and kept.history == FULL.history
    withheld = profile_from_json(_entry(CallerProfile(number=None), mask_numbers=True)["profile"])
    assert withheld.number is None  # decide's "unidentified" stays unidentified


def test_the_crm_extra_is_left_out_and_older_keys_decide_does_not_read_are_ignored() -> None:
    """decide is not given the CRM's free-form `extra`: the log does not keep it (nor a
    client's notes), and entries written when it was kept, with `most_urgent`, still read."""
    rec = CrmRecord("C-1008", status="blocked", abc="C", extra={"note": "payment overdue"})
    profile = CallerProfile("+79161112200", crm=CrmFacts(SourceStatus.OK, rec))
    text = profile_to_json(profile)
    assert "extra" not in json.loads(text)["crm"]["record"] and "payment overdue" not in text
    assert profile_from_json(text).crm.record == CrmRecord("C-1008", status="blocked", abc="C")
    older = ('{"v": 1, "crm": {"status": "ok", "record": {"client_id": "C-1", "open_claims": 1, '
             '"most_urgent": "claim", "extra": {"note": "x"}}}}')
    assert profile_from_json(older).crm.record == CrmRecord("C-1", open_claims=1)


def test_the_call_that_taught_the_owner_is_left_out() -> None:
    """decide reads the owner, not the call: a learned call with its talk chain is not kept."""
    from datetime import UTC, datetime

    from ari_app.core.models import (
        CallerProfile,
        Contact,
        Direction,
        HistoryFacts,
        Talk,
    )
    from ari_app.record.profile_json import profile_from_json, profile_to_json

    taught = Contact(datetime(2026, 12, 7, 9, tzinfo=UTC), Direction.INBOUND, True, "mgr2", 220,
                     (Talk("op1", 40), Talk("mgr2", 180)))
    profile = CallerProfile("+79990001122", HistoryFacts(owner="mgr2", owner_contact=taught))
    back = profile_from_json(profile_to_json(profile))
    assert back.history.owner == "mgr2" and back.history.owner_contact is None
