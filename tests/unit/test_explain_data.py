"""explain_data (`caseline explain --json`) and the pure facts behind it: which source gave the
case holder, the CRM status as reported, the caller's local time and night."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ari_app.config.policy import load_policy
from ari_app.core.decide import caller_local_time, decide, is_night
from ari_app.core.explain import crm_status, explain_data
from ari_app.core.models import (
    CallbackKind,
    CallerProfile,
    CrmFacts,
    CrmRecord,
    EnvironmentFacts,
    HistoryClass,
    HistoryFacts,
    LegalEntity,
    SourceStatus,
)

POLICY = load_policy(Path(__file__).resolve().parents[2] / "config" / "routing.yaml")
AT = datetime(2026, 6, 15, 19, 30, tzinfo=UTC)  # 22:30 Moscow, 05:30 the next day in Vladivostok

CALLBACK = HistoryFacts(SourceStatus.OK, HistoryClass.CALLBACK, CallbackKind.MISSED, owner="mgr3")
OLD = HistoryFacts(SourceStatus.OK, HistoryClass.OLD, owner="mgr2")
CRM = CrmFacts(SourceStatus.OK, CrmRecord("C-1", responsible="mgr1"))
DIRECTORY = EnvironmentFacts(legal_entity=LegalEntity("Holding", "sup1"))


@pytest.mark.parametrize(("history", "crm", "env", "holder", "source"), [
    (CALLBACK, CRM, DIRECTORY, "mgr3", "callback"),
    (OLD, CRM, DIRECTORY, "mgr1", "crm"),
    (OLD, CrmFacts(SourceStatus.OK, CrmRecord("C-1")), DIRECTORY, "sup1", "directory"),
    (OLD, CrmFacts(SourceStatus.UNKNOWN), EnvironmentFacts(legal_entity=LegalEntity("X")), "mgr2", "history"),
    (HistoryFacts(SourceStatus.OK, HistoryClass.CALLBACK), CrmFacts(), EnvironmentFacts(), None, "none"),
])
def test_case_holder_source_follows_case_holder(history: HistoryFacts, crm: CrmFacts, env: EnvironmentFacts,
                                                holder: str | None, source: str) -> None:
    profile = CallerProfile("+79161234567", history, crm, env)
    assert (profile.case_holder, profile.case_holder_source) == (holder, source)


@pytest.mark.parametrize(("status", "configured", "shown"), [
    (SourceStatus.OK, True, "ok"), (SourceStatus.UNKNOWN, True, "not_found"), (SourceStatus.TIMEOUT, True, "timeout"),
    (SourceStatus.SKIPPED, False, "disabled"), (SourceStatus.SKIPPED, True, "not_found"),
    (SourceStatus.UNAVAILABLE, True, "error"), (SourceStatus.ERROR, True, "error"),
    (SourceStatus.MALFORMED, True, "error"), (SourceStatus.BREAKER_OPEN, True, "error"),
])
def test_crm_status_as_reported(status: SourceStatus, configured: bool, shown: str) -> None:
    assert crm_status(CallerProfile("+79161234567", crm=CrmFacts(status)), crm_configured=configured) == shown


def test_caller_local_time_and_night() -> None:
    far = CallerProfile("+74232123456", environment=EnvironmentFacts(timezone="Asia/Vladivostok"))
    local = caller_local_time(far, AT)
    assert local is not None and local.isoformat() == "2026-06-16T05:30:00+10:00"
    assert is_night(POLICY, local) is True  # 23:00-06:00 in the shipped night rule
    moscow = caller_local_time(CallerProfile("+74951234567", environment=EnvironmentFacts(timezone="Europe/Moscow")), AT)
    assert is_night(POLICY, moscow) is False
    by_offset = caller_local_time(CallerProfile("+1", environment=EnvironmentFacts(utc_offset_hours=-5)), AT)
    assert by_offset is not None and by_offset.hour == 14
    assert caller_local_time(CallerProfile("+79161234567"), AT) is None
    assert is_night(POLICY, None) is None
    assert caller_local_time(far, AT.replace(tzinfo=None)) == local  # naive means UTC, as in decide


def test_explain_data_of_a_known_client() -> None:
    profile = CallerProfile(
        "+74232123456", OLD,
        CrmFacts(SourceStatus.OK, CrmRecord("C-1", "Acme", "active", "A", "mgr1", vip=True, extra={"k": "v"})),
        EnvironmentFacts("RU", "Primorie territory", "Asia/Vladivostok", "MTS", 10.0,
                         LegalEntity("Acme Far East", "mgr1", "A", "acme-fe", "Acme", "acme"), "numbering_plan"))
    data = explain_data(profile, decide(profile, POLICY, AT), POLICY, AT, crm_configured=True)
    assert {k: data[k] for k in ("number", "class", "callback_kind", "repeat_after_missed", "owner", "owner_source",
                                 "region", "carrier", "timezone", "timezone_source", "local_time", "night",
                                 "company", "crm_status")} == {
        "number": "+74232123456", "class": "old", "callback_kind": None, "repeat_after_missed": False,
        "owner": "mgr1", "owner_source": "crm", "region": "Primorie territory", "carrier": "MTS",
        "timezone": "Asia/Vladivostok", "timezone_source": "numbering_plan", "local_time": "2026-06-16T05:30:00+10:00",
        "night": True, "company": {"id": "acme-fe", "name": "Acme Far East", "parent": "Acme", "parent_id": "acme"},
        "crm_status": "ok"}
    assert data["crm"] | {} == {"status": "ok", "client_id": "C-1", "name": "Acme", "client_status": "active",
                                "abc": "A", "responsible": "mgr1", "open_deals": 0, "open_orders": 0,
                                "open_claims": 0, "most_urgent": None, "delivery_today": False, "vip": True,
                                "extra": {"k": "v"}}
    decision = data["decision"]
    assert decision["service"] == "manager" and decision["reasons"][0]["rule"] == "inputs"
    # the night rule fired (company closed: its night chain steps down to voicemail)
    assert decision["route"][0] == {"kind": "manager", "target": "mgr1", "timeout_s": 25, "on_busy": 1,
                                    "on_no_answer": 1, "on_unavailable": 1}
    assert decision["route"][-1]["timeout_s"] is None


def test_explain_data_of_a_withheld_caller() -> None:
    profile = CallerProfile(None, HistoryFacts(), CrmFacts())
    data = explain_data(profile, decide(profile, POLICY, AT), POLICY, AT, crm_configured=False)
    assert (data["number"], data["owner_source"], data["crm"], data["timezone_source"], data["local_time"],
            data["night"], data["company"], data["last_contact"]) == (None, "none", {"status": "disabled"},
                                                                      None, None, None, None, None)


def test_timezone_source_of_a_profile_kept_before_the_numbering_plan() -> None:
    """Decision-log profiles written before sources were recorded had phonenumbers' zones only."""
    old = CallerProfile("+74232123456", OLD, CRM, EnvironmentFacts(timezone="Asia/Vladivostok"))
    assert explain_data(old, decide(old, POLICY, AT), POLICY, AT, crm_configured=True)["timezone_source"] == "phonenumbers"
