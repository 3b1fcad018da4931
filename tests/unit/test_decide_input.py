"""What of the CRM's record decide is given: the shipped client directory through the Router.

The CRM's free-form `extra` is display only: decide never sees it, the decision log never
keeps it, `caseline explain` still shows it. The blocked client in the shipped
clients.yaml (C-1008, "stopped paying: defend") is defended as the shipped routing.yaml
says (`client_status: {blocked: C}`).
"""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from ari_app.config.history_settings import HistorySettings
from ari_app.config.live import LiveConfig
from ari_app.core.clock import FixedClock
from ari_app.core.explain import explain_data
from ari_app.core.identify import decide_input
from ari_app.core.models import CallerProfile, CrmFacts, CrmRecord, SourceStatus
from ari_app.crm.adapters.file import FileCrm
from ari_app.crm.service import CrmService
from ari_app.history.store import MemoryHistoryStore
from ari_app.record.profile_json import profile_to_json
from ari_app.router import Router

CONFIG = Path(__file__).resolve().parents[2] / "config"
OPEN = datetime(2026, 6, 15, 9, 0, tzinfo=UTC)  # Monday 12:00 Moscow
BLOCKED = "+79161112200"  # C-1008 in clients.yaml: status blocked, abc C, extra {note: ...}


def router() -> Router:
    crm = CrmService(FileCrm(CONFIG / "clients.yaml"))
    return Router(config=LiveConfig(CONFIG / "routing.yaml", CONFIG / "legal_entities.yaml"),
                  history=MemoryHistoryStore(), crm=crm.facts, clock=FixedClock(OPEN),
                  windows=HistorySettings().windows(), history_budget_s=1.0, crm_budget_s=1.0,
                  default_region="RU")


async def test_decide_is_not_given_the_crm_extra_and_explain_still_shows_it() -> None:
    routed = await router().route(BLOCKED)
    assert routed.crm_record is not None and routed.crm_record.extra == {"note": "payment overdue"}
    assert routed.profile.crm.record == replace(routed.crm_record, extra={})  # the rest, as returned
    assert "payment overdue" not in profile_to_json(routed.profile)
    data = explain_data(routed.profile, routed.decision, routed.snapshot.policy, OPEN, crm_configured=True,
                        crm_record=routed.crm_record)
    assert data["crm"]["extra"] == {"note": "payment overdue"} and data["crm"]["client_status"] == "blocked"


async def test_the_shipped_blocked_client_is_defended() -> None:
    routed = await router().route(BLOCKED)
    texts = {r.rule: r.text for r in routed.decision.reasons}
    assert routed.decision.rule == "abc.C" and str(routed.decision.service) == "self_service"
    assert texts["client_status"] == "CRM status 'blocked': served as C (its own category)"


def test_decide_input_leaves_everything_else() -> None:
    rec = CrmRecord("C-1", "Acme", "active", "A", "mgr1", 1, 2, 3, True, True, {"k": "v"})
    profile = CallerProfile("+79161234567", crm=CrmFacts(SourceStatus.OK, rec, "fine"))
    given = decide_input(profile)
    assert given.crm.record == CrmRecord("C-1", "Acme", "active", "A", "mgr1", 1, 2, 3, True, True)
    assert (given.number, given.history, given.environment, given.crm.detail) == (
        profile.number, profile.history, profile.environment, "fine")
    plain = CallerProfile("+79161234567", crm=CrmFacts(SourceStatus.OK, CrmRecord("C-2")))
    assert decide_input(plain) is plain
