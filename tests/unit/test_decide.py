"""decide(): one named scenario per rule, against the shipped config/routing.yaml."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import ari_app.core.decide as decide_mod
from ari_app.core.decide import decide, route_for_target
from ari_app.core.explain import explain
from ari_app.core.models import (
    CallbackKind,
    CallerProfile,
    CrmFacts,
    CrmRecord,
    EnvironmentFacts,
    HistoryClass,
    HistoryFacts,
    LegalEntity,
    Service,
    SourceStatus,
    StepKind,
)
from ari_app.config.files import ConfigError
from ari_app.config.policy import load_policy, parse_policy
from ari_app.core.policy import Policy

ROUTING = Path(__file__).resolve().parents[2] / "config" / "routing.yaml"
POLICY = load_policy(ROUTING)
RAW: dict[str, Any] = yaml.safe_load(ROUTING.read_text(encoding="utf-8"))

OPEN = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # Monday 12:00 Moscow
SUNDAY = datetime(2025, 3, 2, 9, 0, tzinfo=UTC)  # Sunday 12:00 Moscow: closed
HOLIDAY = datetime(2025, 1, 2, 9, 0, tzinfo=UTC)  # Thursday, New Year holidays
LATE = datetime(2025, 3, 3, 19, 30, tzinfo=UTC)  # Monday 22:30 Moscow: closed; 05:30 in Vladivostok
CHRISTMAS_2027 = datetime(2027, 1, 7, 9, 0, tzinfo=UTC)  # Thursday 12:00 Moscow: a public holiday
NUMBER = "+79161234567"


def variant(changes: dict[str, Any]) -> Policy:
    data = copy.deepcopy(RAW)
    for dotted, value in changes.items():
        *path, last = dotted.split(".")
        node = data
        for part in path:
            node = node[part]
        node[last] = value
    return parse_policy(data)


def hist(cls: HistoryClass, **kw: Any) -> HistoryFacts:
    return HistoryFacts(status=SourceStatus.OK, cls=cls, **kw)


def crm(**kw: Any) -> CrmFacts:
    return CrmFacts(status=SourceStatus.OK, record=CrmRecord(client_id="c1", **kw))


def caller(history: HistoryFacts | None = None, crm_facts: CrmFacts | None = None, env: EnvironmentFacts | None = None, number: str | None = NUMBER) -> CallerProfile:
    return CallerProfile(number, history or hist(HistoryClass.NEW), crm_facts or CrmFacts(status=SourceStatus.UNKNOWN), env or EnvironmentFacts())


@dataclass(frozen=True)
class Row:
    name: str
    profile: CallerProfile
    rule: str  # the decisive rule id
    route: list[tuple[str, str]]  # (kind, target) of every step
    service: Service
    priority: int
    now: datetime = OPEN
    policy: Policy = POLICY
    ring: int | None = None  # ring timeout of the first person step
    reasons: list[str] = field(default_factory=list)  # further rule ids expected in the reasons


VIP = [("supervisor", "sup1"), ("queue", "operators")]
OPS = [("queue", "operators")]

ROWS = [
    Row("1 closed on Sunday: after-hours voicemail", caller(), "hours.after_hours",
        [("playback", "vm-nobodyavail"), ("voicemail", "1000@default")], Service.SELF_SERVICE, 20, now=SUNDAY),
    Row("1 holiday", caller(crm_facts=crm(abc="A", responsible="mgr1")), "hours.holiday",
        [("playback", "vm-nobodyavail"), ("voicemail", "1000@default")], Service.SELF_SERVICE, 70, now=HOLIDAY),
    Row("1 after hours, IVR action", caller(), "hours.after_hours", [("playback", "vm-nobodyavail"), ("ivr", "main")],
        Service.SELF_SERVICE, 20, now=SUNDAY, policy=variant({"hours.after_hours.action": "ivr"})),
    Row("1 public holiday from the holidays package, past any list we shipped", caller(), "hours.holiday",
        [("playback", "vm-nobodyavail"), ("voicemail", "1000@default")], Service.SELF_SERVICE, 20, now=CHRISTMAS_2027),
    Row("1 a public holiday made a working day", caller(), "classes.new", OPS, Service.OPERATOR, 20,
        now=CHRISTMAS_2027, policy=variant({"hours.working_days": ["2027-01-07"]})),
    Row("1 country none: only our own holidays", caller(), "classes.new", OPS, Service.OPERATOR, 20,
        now=CHRISTMAS_2027, policy=variant({"hours.country": "none"})),
    Row("1 our own closed day on top of the public ones", caller(), "hours.holiday",
        [("playback", "vm-nobodyavail"), ("voicemail", "1000@default")], Service.SELF_SERVICE, 20,
        policy=variant({"hours.holidays": ["2025-03-03"]})),
    Row("1 another country's holidays (hours.country)", caller(), "hours.holiday",
        [("playback", "vm-nobodyavail"), ("voicemail", "1000@default")], Service.SELF_SERVICE, 20,
        now=datetime(2025, 3, 21, 9, 0, tzinfo=UTC), policy=variant({"hours.country": "KZ"})),  # Nauryz
    Row("1 hours disabled: open on Sunday", caller(), "classes.new", OPS, Service.OPERATOR, 20, now=SUNDAY,
        policy=variant({"hours.enabled": False})),
    Row("2 far night call while open (New York 04:00)", caller(env=EnvironmentFacts(timezone="America/New_York")),
        "night_far_tz", [("supervisor", "sup1"), ("queue", "operators")], Service.MANAGER, 100),
    Row("2 far night call to the holder, vip chain", caller(crm_facts=crm(responsible="mgr2"), env=EnvironmentFacts(utc_offset_hours=-5)),
        "night_far_tz", [("manager", "mgr2"), *VIP], Service.MANAGER, 100),
    Row("2 far night call overrides after hours (Vladivostok)", caller(env=EnvironmentFacts(timezone="Asia/Vladivostok")),
        "night_far_tz", [("supervisor", "sup1"), ("voicemail", "1000@default")], Service.MANAGER, 100, now=LATE,
        reasons=["hours.after_hours"]),
    Row("2 night but near (Kaliningrad, 1 h): normal after hours", caller(env=EnvironmentFacts(timezone="Europe/Kaliningrad")),
        "hours.after_hours", [("playback", "vm-nobodyavail"), ("voicemail", "1000@default")], Service.SELF_SERVICE, 20,
        now=datetime(2025, 3, 3, 21, 30, tzinfo=UTC)),
    Row("3 open claim to its holder", caller(crm_facts=crm(responsible="mgr1", open_claims=1, abc="C")), "context.claim",
        [("manager", "mgr1"), *VIP], Service.MANAGER, 90),
    Row("3 open claim, no holder: supervisor", caller(crm_facts=crm(open_claims=1)), "context.claim", VIP, Service.MANAGER, 90),
    Row("3 delivery today: logistics", caller(crm_facts=crm(delivery_today=True, responsible="mgr1")), "context.delivery_today",
        [("manager", "mgr3"), ("queue", "operators")], Service.MANAGER, 70),
    Row("4 callback after a missed call", caller(hist(HistoryClass.CALLBACK, callback_kind=CallbackKind.MISSED, owner="mgr2")),
        "callback.missed", [("manager", "mgr2"), ("queue", "operators")], Service.MANAGER, 55, ring=30),
    Row("4 callback after talking", caller(hist(HistoryClass.CALLBACK, callback_kind=CallbackKind.AFTER_TALK, owner="mgr1")),
        "callback.after_talk", [("manager", "mgr1"), ("queue", "operators")], Service.MANAGER, 60, ring=20),
    Row("4 callback of unknown kind is a missed one", caller(hist(HistoryClass.CALLBACK, owner="mgr1")),
        "callback.missed", [("manager", "mgr1"), ("queue", "operators")], Service.MANAGER, 55, ring=30),
    Row("4 callback wins over the CRM responsible", caller(hist(HistoryClass.CALLBACK, callback_kind=CallbackKind.MISSED, owner="mgr2"), crm(responsible="mgr1", abc="A")),
        "callback.missed", [("manager", "mgr2"), *VIP], Service.MANAGER, 85),
    Row("5 seed story: the repeat caller goes straight to his case holder", caller(hist(HistoryClass.REPEAT, owner="mgr2")),
        "repeat", [("manager", "mgr2"), ("queue", "operators")], Service.MANAGER, 50),
    Row("5 repeat after a missed call: bigger boost", caller(hist(HistoryClass.REPEAT, owner="mgr1", previous_missed=True)),
        "repeat", [("manager", "mgr1"), ("queue", "operators")], Service.MANAGER, 70),
    Row("5 repeat after a missed call, nobody to ring: operators, boosted", caller(hist(HistoryClass.REPEAT, previous_missed=True)),
        "repeat", OPS, Service.OPERATOR, 70),
    Row("5 repeat, history owner unknown: CRM holder", caller(hist(HistoryClass.REPEAT), crm(responsible="mgr3", abc="B")),
        "repeat", [("manager", "mgr3"), ("queue", "operators")], Service.MANAGER, 60),
    Row("6 A: direct to the holder, escalate to the supervisor", caller(crm_facts=crm(abc="A", responsible="mgr1")), "abc.A",
        [("manager", "mgr1"), *VIP], Service.MANAGER, 70, ring=30),
    Row("6 A from a legal-entity directory (branch number)", caller(env=EnvironmentFacts(legal_entity=LegalEntity("Big Co", manager="mgr2", abc="A"))),
        "abc.A", [("manager", "mgr2"), *VIP], Service.MANAGER, 70),
    Row("6 A without a holder: operators", caller(crm_facts=crm(abc="A")), "abc.A", OPS, Service.OPERATOR, 70),
    Row("6 A, holder not in people: operators", caller(crm_facts=crm(abc="a", responsible="mgr9")), "abc.A", OPS, Service.OPERATOR, 70),
    Row("6 B: the holder if available, else operators", caller(crm_facts=crm(abc="B", responsible="mgr3")), "abc.B",
        [("manager", "mgr3"), ("queue", "operators")], Service.MANAGER, 50),
    Row("6 C: defence, recording then IVR", caller(crm_facts=crm(abc="C", responsible="mgr1")), "abc.C",
        [("playback", "demo-thanks"), ("ivr", "main")], Service.SELF_SERVICE, 10),
    Row("6 VIP of category C is served as A: its manager, escalating", caller(crm_facts=crm(abc="C", responsible="mgr1", vip=True)),
        "abc.A", [("manager", "mgr1"), *VIP], Service.MANAGER, 70, reasons=["vip"]),
    Row("6 unclassified VIP is served as A", caller(crm_facts=crm(responsible="mgr2", vip=True)), "abc.A",
        [("manager", "mgr2"), *VIP], Service.MANAGER, 70, reasons=["vip"]),
    Row("6 VIP boost on the base priority", caller(crm_facts=crm(abc="A", responsible="mgr1", vip=True)), "abc.A",
        [("manager", "mgr1"), *VIP], Service.MANAGER, 75, policy=variant({"vip.boost": 5})),
    Row("6 VIP boost leaves a fixed priority alone", caller(crm_facts=crm(open_claims=1, responsible="mgr1", vip=True)),
        "context.claim", [("manager", "mgr1"), *VIP], Service.MANAGER, 90, policy=variant({"vip.boost": 5})),
    Row("6 VIP keeps its own category with serve_as null", caller(crm_facts=crm(abc="C", responsible="mgr1", vip=True)),
        "abc.C", [("playback", "demo-thanks"), ("ivr", "main")], Service.SELF_SERVICE, 10,
        policy=variant({"vip.serve_as": None})),
    Row("6 serve_as B does not lower an A VIP", caller(crm_facts=crm(abc="A", responsible="mgr1", vip=True)),
        "abc.A", [("manager", "mgr1"), *VIP], Service.MANAGER, 70, policy=variant({"vip.serve_as": "B"})),
    Row("1 VIP boost after hours too", caller(crm_facts=crm(abc="B", vip=True)), "hours.after_hours",
        [("playback", "vm-nobodyavail"), ("voicemail", "1000@default")], Service.SELF_SERVICE, 80, now=SUNDAY,
        policy=variant({"vip.boost": 10})),
    Row("6 blocked A client: defended as C (client_status)", caller(hist(HistoryClass.OLD, owner="mgr1"),
        crm(status="blocked", abc="A", responsible="mgr1")), "abc.C", [("playback", "demo-thanks"), ("ivr", "main")],
        Service.SELF_SERVICE, 10, reasons=["client_status"]),
    Row("6 blocked VIP: the status wins, no VIP floor or boost", caller(crm_facts=crm(status=" Blocked ", abc="B",
        responsible="mgr1", vip=True)), "abc.C", [("playback", "demo-thanks"), ("ivr", "main")], Service.SELF_SERVICE, 10,
        policy=variant({"vip.boost": 5}), reasons=["client_status"]),
    Row("6 blocked without a category: C", caller(crm_facts=crm(status="blocked", responsible="mgr2")), "abc.C",
        [("playback", "demo-thanks"), ("ivr", "main")], Service.SELF_SERVICE, 10, reasons=["client_status"]),
    Row("6 a listed status only caps: a C client stays C under `on_hold: B`", caller(crm_facts=crm(status="on_hold",
        abc="C")), "abc.C", [("playback", "demo-thanks"), ("ivr", "main")], Service.SELF_SERVICE, 10,
        policy=variant({"client_status": {"on_hold": "B"}}), reasons=["client_status"]),
    Row("6 a status not listed changes nothing", caller(crm_facts=crm(status="prospect", abc="A", responsible="mgr1")),
        "abc.A", [("manager", "mgr1"), *VIP], Service.MANAGER, 70),
    Row("3 a blocked client's open claim still reaches its holder", caller(crm_facts=crm(status="blocked", abc="A",
        open_claims=1, responsible="mgr1")), "context.claim", [("manager", "mgr1"), *VIP], Service.MANAGER, 90),
    Row("1 blocked after hours: the C priority", caller(crm_facts=crm(status="blocked", abc="A")), "hours.after_hours",
        [("playback", "vm-nobodyavail"), ("voicemail", "1000@default")], Service.SELF_SERVICE, 10, now=SUNDAY),
    Row("7 new to the PBX, open order in the CRM: an active client, to its manager", caller(crm_facts=crm(
        open_orders=1, responsible="mgr2")), "classes.old", [("manager", "mgr2"), ("queue", "operators")],
        Service.MANAGER, 40, reasons=["open_business"]),
    Row("7 open deal in expansion mode: old's priority, not new's", caller(crm_facts=crm(open_deals=2)), "classes.old",
        OPS, Service.OPERATOR, 30, policy=variant({"strategy.mode": "expansion"}), reasons=["open_business"]),
    Row("7 open order, history unreachable: old, not unknown", caller(HistoryFacts(status=SourceStatus.UNAVAILABLE),
        crm(open_orders=1, responsible="mgr1")), "classes.old", [("manager", "mgr1"), ("queue", "operators")],
        Service.MANAGER, 40, reasons=["open_business"]),
    Row("7 no open business: still new", caller(crm_facts=crm(responsible="mgr2", open_claims=0)), "classes.new", OPS,
        Service.OPERATOR, 20),
    Row("7 old client: the holder", caller(hist(HistoryClass.OLD, owner="mgr1")), "classes.old",
        [("manager", "mgr1"), ("queue", "operators")], Service.MANAGER, 40),
    Row("7 seed story six months on: old caller, CRM responsible", caller(hist(HistoryClass.OLD, owner="mgr1"), crm(responsible="mgr2")),
        "classes.old", [("manager", "mgr2"), ("queue", "operators")], Service.MANAGER, 40),
    Row("7 new caller: operators at the retention priority", caller(), "classes.new", OPS, Service.OPERATOR, 20),
    Row("7 new caller in expansion mode: served first", caller(), "classes.new", OPS, Service.OPERATOR, 70,
        policy=variant({"strategy.mode": "expansion"})),
    Row("8 no rule at all: default", caller(hist(HistoryClass.OLD, owner="mgr1")), "default", OPS, Service.OPERATOR, 40,
        policy=variant({"rules": {}})),
    Row("degraded sources are stated", caller(HistoryFacts(status=SourceStatus.TIMEOUT), CrmFacts(status=SourceStatus.BREAKER_OPEN, detail="3 failures")),
        "classes.new", OPS, Service.OPERATOR, 20, reasons=["history.timeout", "crm.breaker_open"]),
    Row("withheld number", caller(HistoryFacts(), CrmFacts(), number=None), "classes.new", OPS, Service.OPERATOR, 20),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_rule_table(row: Row) -> None:
    d = decide(row.profile, row.policy, row.now)
    rules = [r.rule for r in d.reasons]
    assert [(s.kind.value, s.target) for s in d.route] == row.route, explain(d)
    assert row.rule in rules, explain(d)
    assert d.service is row.service
    assert d.priority == row.priority, explain(d)
    assert rules[0] == "inputs" and "decide.error" not in rules
    for extra in row.reasons:
        assert extra in rules, explain(d)
    if row.ring is not None:
        first = next(s for s in d.route if s.kind in (StepKind.MANAGER, StepKind.SUPERVISOR))
        assert first.ring_timeout_s == row.ring


def test_vip_chain_indexes() -> None:
    d = decide(caller(crm_facts=crm(abc="A", responsible="mgr1")), POLICY, OPEN)
    mgr, sup, ops = d.route
    assert (mgr.on_busy, mgr.on_no_answer, mgr.on_unavailable) == (1, 1, 1)
    assert (sup.on_busy, sup.on_no_answer, sup.on_unavailable) == (2, 2, 2)
    assert sup.ring_timeout_s == 20 and ops.on_busy is None


def test_mixed_chain_and_intro_shift_indexes() -> None:
    p = variant({"chains.vip.on_unavailable": "step_down", "rules.abc.A.intro": "thanks"})
    d = decide(caller(crm_facts=crm(abc="A", responsible="mgr1")), p, OPEN)
    assert [s.kind for s in d.route] == [StepKind.PLAYBACK, StepKind.MANAGER, StepKind.SUPERVISOR, StepKind.QUEUE]
    assert (d.route[1].on_busy, d.route[1].on_unavailable) == (2, 3)
    assert d.service is Service.MANAGER


def test_escalation_skipped_when_target_is_the_escalation_person() -> None:
    d = decide(caller(crm_facts=crm(open_claims=1)), POLICY, OPEN)
    assert [s.target for s in d.route] == ["sup1", "operators"]


def test_callback_request_after_hours() -> None:
    p = variant({"hours.after_hours.action": "callback_request"})
    d = decide(caller(), p, SUNDAY)
    assert d.callback_request and d.rule == "hours.after_hours"  # the request's reason
    assert [(s.kind, s.target) for s in d.route] == [(StepKind.PLAYBACK, "vm-nobodyavail"),
                                                     (StepKind.CALLBACK, "")]
    assert "callback requested" in explain(d) and "file a callback request" in explain(d)


def test_a_withheld_caller_after_hours_is_not_promised_a_callback() -> None:
    p = variant({"hours.after_hours.action": "callback_request"})
    d = decide(caller(number=None), p, SUNDAY)
    assert not d.callback_request
    assert [s.kind for s in d.route] == [StepKind.PLAYBACK, StepKind.HANGUP]
    assert "no number to call back" in d.reasons[-1].text


def test_a_rule_can_file_a_callback_and_a_withheld_caller_falls_through() -> None:
    p = variant({"rules.classes.new.target": ["callback:thanks", "queue:operators"]})
    d = decide(caller(), p, OPEN)
    assert d.callback_request and d.rule == "classes.new"
    assert [(s.kind, s.target) for s in d.route] == [(StepKind.CALLBACK, "queue-thankyou")]
    d = decide(caller(number=None), p, OPEN)
    assert not d.callback_request
    assert [(s.kind, s.target) for s in d.route] == [(StepKind.QUEUE, "operators")]


def test_an_ivr_option_can_offer_a_callback() -> None:
    route = route_for_target(POLICY, POLICY.ivr["main"].options["2"], caller())
    assert [(s.kind, s.target) for s in route] == [(StepKind.CALLBACK, "queue-thankyou")]
    route = route_for_target(POLICY, POLICY.ivr["main"].options["2"], caller(number=None))
    assert [(s.kind, s.target) for s in route] == [(StepKind.QUEUE, "operators")]


def test_naive_time_is_utc() -> None:
    d = decide(caller(), POLICY, OPEN.replace(tzinfo=None))
    assert "clock.naive" in [r.rule for r in d.reasons]
    assert d.route[0].kind is StepKind.QUEUE


def test_degraded_reason_text_is_readable() -> None:
    d = decide(caller(HistoryFacts(status=SourceStatus.UNAVAILABLE), CrmFacts(status=SourceStatus.TIMEOUT, detail="bitrix\n took 2s")), POLICY, OPEN)
    texts = {r.rule: r.text for r in d.reasons}
    assert "call history unavailable" in texts["history.unavailable"]
    assert texts["crm.timeout"].startswith("CRM timeout (bitrix took 2s)")


def test_internal_error_gives_safe_default(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(decide_mod, "_decide", boom)
    d = decide(caller(), POLICY, OPEN)
    assert d.route[0].kind is StepKind.QUEUE and d.route[0].target == "operators"
    assert d.reasons[0].rule == "decide.error" and "RuntimeError: bug" in d.reasons[0].text


def test_explain_lists_route_and_reasons() -> None:
    d = decide(caller(hist(HistoryClass.REPEAT, owner="mgr2", previous_missed=True), crm(abc="A")), POLICY, OPEN)
    text = explain(d)
    assert text.splitlines()[0] == "Service: manager, priority 100"
    assert "0. ring manager mgr2 for 25 s (busy -> 1, no answer -> 1, unavailable -> 1)" in text
    assert "2. queue operators [end]" in text
    assert "[repeat] repeat call after a call we missed -> manager:mgr2" in text
    assert "[chain] fallback chain 'vip' (by client value A)" in text


def test_route_for_ivr_option() -> None:
    options = POLICY.ivr["main"].options
    known = caller(crm_facts=crm(responsible="mgr1", abc="B"))
    assert [s.target for s in route_for_target(POLICY, options["1"], known)] == ["mgr1", "operators"]
    assert [s.target for s in route_for_target(POLICY, options["1"])] == ["operators"]
    assert [s.kind for s in route_for_target(POLICY, "hangup")] == [StepKind.HANGUP]


def test_disabled_rule_is_skipped() -> None:
    p = variant({"rules.repeat.enabled": False})
    d = decide(caller(hist(HistoryClass.REPEAT, owner="mgr2")), p, OPEN)
    assert "classes.old" in [r.rule for r in d.reasons] and d.route[0].target == "mgr2"


# --- strategy: who goes first --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["expansion", "retention"])
def test_two_calls_at_once_the_mode_decides_who_goes_first(mode: str) -> None:
    """mission.md: a new client the company paid to attract and a valuable old client call
    at once; expansion serves the new one first, retention the old one."""
    p = variant({"strategy.mode": mode})
    new = decide(caller(), p, OPEN).priority
    valuable = decide(caller(hist(HistoryClass.OLD, owner="mgr1"), crm(abc="A", responsible="mgr1")), p, OPEN).priority
    old = decide(caller(hist(HistoryClass.OLD, owner="mgr1")), p, OPEN).priority
    if mode == "expansion":
        assert new > valuable and new > old
    else:
        assert valuable > new and old > new


@pytest.mark.parametrize(("mode", "table", "reason"), [
    ("expansion", {"A": 60, "new": 50}, "A above new (50): expansion mode serves new callers first"),
    ("expansion", {"old": 80}, "old above new (70)"),
    ("retention", {"new": 45}, "new (45) above old: retention mode serves valuable existing clients first"),
    ("retention", {"new": 80}, "new (80) above A, B, old"),
])
def test_a_table_against_its_mode_is_refused(mode: str, table: dict[str, int], reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        variant({f"strategy.{mode}.{k}": v for k, v in table.items()})
    assert err.value.key == f"strategy.{mode}" and reason in err.value.reason


def test_equal_bases_are_allowed() -> None:
    flat = dict.fromkeys(["A", "B", "C", "new", "old", "unknown"], 0)
    assert variant({"strategy.expansion": flat, "strategy.retention": flat}).strategy.expansion.new == 0


def test_docs_show_the_shipped_priority_tables() -> None:
    """docs/routing.md and config/routing.yaml state the same priorities."""
    docs = (ROUTING.parents[1] / "docs" / "routing.md").read_text(encoding="utf-8")
    shipped = ROUTING.read_text(encoding="utf-8")
    for mode in ("expansion", "retention"):
        line = next(ln.strip() for ln in shipped.splitlines() if ln.strip().startswith(f"{mode}: {{"))
        assert line in docs, line


# --- vip -----------------------------------------------------------------------------------


def test_vip_reason_says_what_it_changed() -> None:
    d = decide(caller(crm_facts=crm(abc="C", responsible="mgr1", vip=True)), variant({"vip.boost": 5}), OPEN)
    texts = {r.rule: r.text for r in d.reasons}
    assert texts["vip"] == "CRM: VIP client, served as A (own category C), base priority +5"
    assert "abc=A (VIP)" in texts["inputs"]
    assert texts["priority"] == "75 (retention mode, A base 70, boost +0, VIP +5)"
    assert "vip" not in [r.rule for r in decide(caller(crm_facts=crm(abc="C")), POLICY, OPEN).reasons]


# --- the CRM's status and open business ------------------------------------------------


def test_client_status_reason_says_what_it_changed() -> None:
    d = decide(caller(crm_facts=crm(status="BLOCKED", abc="A", vip=True)), POLICY, OPEN)
    texts = {r.rule: r.text for r in d.reasons}
    assert texts["client_status"] == "CRM status 'blocked': served as C (own category A), VIP flag not applied"
    assert "vip" not in texts and "abc=C;" in texts["inputs"] and "status 'BLOCKED'" in texts["inputs"]
    assert texts["priority"] == "10 (retention mode, C base 10, boost +0)"
    same = decide(caller(crm_facts=crm(status="blocked", abc="C")), POLICY, OPEN)
    assert {r.rule: r.text for r in same.reasons}["client_status"] == "CRM status 'blocked': served as C (its own category)"


def test_open_business_reason_only_when_it_changed_the_segment() -> None:
    d = decide(caller(crm_facts=crm(open_orders=1, open_deals=2)), POLICY, OPEN)
    texts = {r.rule: r.text for r in d.reasons}
    assert texts["open_business"] == "CRM: 1 open order, 2 open deals: an active client, served as old, not new"
    assert texts["classes.old"].startswith("known caller (CRM: 1 open order, 2 open deals; history class new)")
    assert "open orders 1, open deals 2" in texts["inputs"]
    for profile in (caller(hist(HistoryClass.OLD), crm(open_orders=1)), caller(crm_facts=crm(open_orders=1, abc="B"))):
        assert "open_business" not in [r.rule for r in decide(profile, POLICY, OPEN).reasons]


@pytest.mark.parametrize(("statuses", "key", "reason"), [
    ({"blocked": "D"}, "client_status.blocked", "Input should be 'A', 'B' or 'C'"),
    ({"blocked": "C", "Blocked ": "B"}, "client_status", "'Blocked ' is listed twice"),
    ({" ": "C"}, "client_status", "a blank status"),
])
def test_client_status_is_validated(statuses: dict[str, str], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        variant({"client_status": statuses})
    assert err.value.key == key and reason in err.value.reason, err.value


def test_client_status_names_are_compared_without_case() -> None:
    assert variant({"client_status": {" On Hold ": "B"}}).client_status == {"on hold": "B"}
    assert POLICY.client_status == {"blocked": "C"}


def test_vip_serve_as_is_validated() -> None:
    with pytest.raises(ConfigError) as err:
        variant({"vip.serve_as": "D"})
    assert err.value.key == "vip.serve_as"


# --- holidays ------------------------------------------------------------------------------


def test_public_holiday_reason_names_it() -> None:
    d = decide(caller(), POLICY, CHRISTMAS_2027)
    texts = {r.rule: r.text for r in d.reasons}
    assert texts["hours.holiday"].startswith("public holiday 2027-01-07: Christmas Day (RU)")


def test_the_package_holidays_do_not_run_out() -> None:
    for year in range(2025, 2041):
        new_year = datetime(year, 1, 1, 9, 0, tzinfo=UTC)
        assert [r.rule for r in decide(caller(), POLICY, new_year).reasons][-1] == "hours.holiday", year


@pytest.mark.parametrize(("changes", "key", "reason"), [
    ({"company.country": "XX"}, "company.country", "unknown country 'XX'"),
    ({"hours.country": "XX"}, "hours.country", "unknown country 'XX'"),
    ({"company.country": "Russia"}, "company.country", "String should match pattern"),
    ({"hours.subdivision": "ZZ"}, "hours.subdivision", "unknown subdivision 'ZZ' of RU"),
    ({"hours.country": "none", "hours.subdivision": "TA"}, "hours.subdivision", "needs a country"),
    ({"hours.working_days": ["2027-01-13"]}, "hours.working_days.0", "2027-01-13 is not a public holiday in RU"),
    ({"hours.working_days": ["2027-01-07"], "hours.holidays": ["2027-01-07"]}, "hours.working_days.0",
     "also in hours.holidays"),
    ({"hours.country": "none", "hours.working_days": ["2027-01-07"]}, "hours.working_days.0",
     "no public holidays to work on"),
])
def test_holiday_settings_are_validated(changes: dict[str, Any], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        variant(changes)
    assert err.value.key == key and reason in err.value.reason, err.value
