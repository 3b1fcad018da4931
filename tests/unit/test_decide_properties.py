"""decide() invariants over arbitrary profiles, times and a few policy variants."""
from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ari_app.core.decide import decide, route_for_target
from ari_app.core.explain import explain
from ari_app.core.models import (
    TERMINAL_KINDS,
    CallbackKind,
    CallerProfile,
    CrmFacts,
    CrmRecord,
    Decision,
    EnvironmentFacts,
    HistoryClass,
    HistoryFacts,
    LegalEntity,
    Service,
    SourceStatus,
    StepKind,
)
from ari_app.config.policy import parse_policy
from ari_app.core.policy import Policy

ROUTING = Path(__file__).resolve().parents[2] / "config" / "routing.yaml"
RAW: dict[str, Any] = yaml.safe_load(ROUTING.read_text(encoding="utf-8"))


def variant(edit: Any = None) -> Policy:
    data = copy.deepcopy(RAW)
    if edit:
        edit(data)
    return parse_policy(data)


def _everything_escalates(d: dict[str, Any]) -> None:
    d["chains"]["standard"].update(on_busy="escalate", on_no_answer="escalate", escalate_to="manager:mgr1")
    for group in ("context", "callback", "abc", "classes"):
        for rule in d["rules"][group].values():
            rule["intro"] = "thanks"
    d["rules"]["repeat"]["intro"] = "thanks"


def _no_supervisor(d: dict[str, Any]) -> None:
    d["people"]["supervisors"] = {}
    d["chains"]["vip"]["escalate_to"] = "manager:mgr3"
    d["rules"]["night_far_tz"]["target"] = "holder"
    d["rules"]["context"]["claim"]["target"] = ["holder", "history_owner"]


POLICIES = {
    "shipped": variant(),
    "expansion": variant(lambda d: d["strategy"].update(mode="expansion")),
    "24/7": variant(lambda d: d["hours"].update(enabled=False)),
    "after-hours ivr": variant(lambda d: d["hours"]["after_hours"].update(action="ivr")),
    "callback request": variant(lambda d: d["hours"]["after_hours"].update(action="callback_request")),
    "escalate everywhere, intros": variant(_everything_escalates),
    "no supervisor": variant(_no_supervisor),
    "no rules": variant(lambda d: d.update(rules={})),
}

ids = st.one_of(st.none(), st.sampled_from(["mgr1", "mgr2", "mgr3", "sup1", "mgr9", "", " "]), st.text(max_size=8))
abc = st.one_of(st.none(), st.sampled_from(["A", "B", "C", "a", " b ", "D", ""]), st.text(max_size=3))
statuses = st.sampled_from(SourceStatus)
zones = st.one_of(
    st.none(),
    st.sampled_from(["Asia/Vladivostok", "America/New_York", "Europe/Moscow", "Europe/Kaliningrad", "Pacific/Kiritimati", "Not/AZone", "", "../etc/passwd"]),
    st.text(max_size=15),
)
history = st.builds(
    HistoryFacts,
    status=statuses,
    cls=st.sampled_from(HistoryClass),
    callback_kind=st.none() | st.sampled_from(CallbackKind),
    previous_missed=st.none() | st.booleans(),
    owner=ids,
)
record = st.builds(
    CrmRecord,
    client_id=st.text(max_size=4),
    status=st.sampled_from(["", "active", "blocked", " Blocked ", "prospect"]) | st.text(max_size=12),
    abc=abc,
    responsible=ids,
    open_deals=st.integers(-2, 5),
    open_orders=st.integers(-2, 5),
    open_claims=st.integers(-2, 5),
    delivery_today=st.booleans(),
    vip=st.booleans(),
)
crm = st.builds(CrmFacts, status=statuses, record=st.none() | record, detail=st.text(max_size=40))
env = st.builds(
    EnvironmentFacts,
    timezone=zones,
    utc_offset_hours=st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-14, 14).map(float),
    legal_entity=st.none() | st.builds(LegalEntity, company=st.text(max_size=4), manager=ids, abc=abc),
)
profiles = st.builds(CallerProfile, number=st.none() | st.just("+79161234567"), history=history, crm=crm, environment=env)
times = st.one_of(
    st.datetimes(timezones=st.just(UTC)),  # years 1..9999: edges of datetime's range
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.sampled_from([UTC, ZoneInfo("Asia/Tokyo")])),
    st.datetimes(),  # naive
)
policies = st.sampled_from(list(POLICIES))

FAST = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def check_route(d: Decision, p: Policy) -> None:
    route = d.route
    assert route, "empty route"
    n = len(route)
    queues = {q.asterisk_queue for q in p.queues.values()}
    for i, s in enumerate(route):
        fallbacks = (s.on_busy, s.on_no_answer, s.on_unavailable)
        if s.kind in (StepKind.MANAGER, StepKind.SUPERVISOR):
            assert all(f is not None and i < f < n for f in fallbacks), (i, s)
            assert 1 <= s.ring_timeout_s <= 120
            people = p.people.managers if s.kind is StepKind.MANAGER else p.people.supervisors
            assert s.target in people, s
            assert p.endpoint_of(s.target)
        else:
            assert fallbacks == (None, None, None), (i, s)
        if s.kind is StepKind.PLAYBACK:
            assert i + 1 < n and s.target in p.recordings.values()
        elif s.kind is StepKind.QUEUE:
            assert s.target in queues
        elif s.kind is StepKind.IVR:
            assert s.target in p.ivr
        elif s.kind is StepKind.VOICEMAIL:
            assert s.target in p.voicemail.values()
    assert route[-1].kind in TERMINAL_KINDS

    # every path from step 0 ends at a terminal step (walk all branches)
    todo, seen = [0], set()
    while todo:
        i = todo.pop()
        if i in seen:
            continue
        seen.add(i)
        s = route[i]
        if s.kind in TERMINAL_KINDS:
            continue
        nxt = [i + 1] if s.kind is StepKind.PLAYBACK else [s.on_busy, s.on_no_answer, s.on_unavailable]
        for j in nxt:
            assert j is not None and i < j < n
            todo.append(j)


@FAST
@given(profile=profiles, now=times, name=policies)
def test_decision_invariants(profile: CallerProfile, now: datetime, name: str) -> None:
    p = POLICIES[name]
    d = decide(profile, p, now)
    check_route(d, p)
    assert isinstance(d.priority, int) and 0 <= d.priority <= 100
    assert isinstance(d.service, Service)
    assert d.reasons and all(r.rule and r.text for r in d.reasons)
    rules = [r.rule for r in d.reasons]
    assert "decide.error" not in rules, rules
    assert d.callback_request == (d.route[-1].kind is StepKind.CALLBACK)
    # a withheld caller cannot be called back
    assert d.callback_request == (name == "callback request" and rules[-1].startswith("hours.")
                                  and profile.number is not None)
    if profile.history.status in (SourceStatus.UNAVAILABLE, SourceStatus.TIMEOUT, SourceStatus.ERROR, SourceStatus.BREAKER_OPEN):
        assert f"history.{profile.history.status}" in rules
    if profile.crm.status in (SourceStatus.UNAVAILABLE, SourceStatus.TIMEOUT, SourceStatus.ERROR, SourceStatus.BREAKER_OPEN):
        assert f"crm.{profile.crm.status}" in rules
    assert decide(profile, p, now) == d  # deterministic
    assert explain(d)


@FAST
@given(now=times, name=policies)
def test_no_data_goes_to_operators_or_after_hours(now: datetime, name: str) -> None:
    p = POLICIES[name]
    d = decide(CallerProfile(number=None), p, now)
    rules = [r.rule for r in d.reasons]
    if rules[-1] in ("hours.after_hours", "hours.holiday"):
        assert d.route[-1].kind in (StepKind.VOICEMAIL, StepKind.IVR, StepKind.HANGUP)
    else:
        human = [(s.kind, s.target) for s in d.route if s.kind is not StepKind.PLAYBACK]
        assert human == [(StepKind.QUEUE, "operators")], explain(d)
        assert d.service is Service.OPERATOR


@settings(max_examples=150, deadline=None, database=None)
@given(profile=profiles, name=policies, option=st.sampled_from(["1", "0", "2"]))
def test_ivr_option_routes_are_sound(profile: CallerProfile, name: str, option: str) -> None:
    p = POLICIES[name]
    route = route_for_target(p, p.ivr["main"].options[option], profile)
    check_route(Decision(Service.IVR, 0, route, ()), p)


@FAST
@given(profile=profiles, rec=record, now=times, name=policies)
def test_a_vip_is_decided_as_an_a_client(profile: CallerProfile, rec: CrmRecord, now: datetime, name: str) -> None:
    """Shipped `vip: {serve_as: A, boost: 0}`: the CRM's VIP flag makes any client an A
    client, to the route, the service and the priority."""
    p = POLICIES[name]
    vip = replace(profile, crm=replace(profile.crm, record=replace(rec, vip=True, status="active")))
    as_a = replace(profile, crm=replace(profile.crm, record=replace(rec, vip=False, abc="A", status="active")))
    d, a = decide(vip, p, now), decide(as_a, p, now)
    assert (d.route, d.service, d.priority) == (a.route, a.service, a.priority), explain(d)
    assert "vip" in [r.rule for r in d.reasons]


@FAST
@given(profile=profiles, rec=record, now=times, name=policies)
def test_a_blocked_client_is_decided_as_a_c_client(profile: CallerProfile, rec: CrmRecord, now: datetime,
                                                   name: str) -> None:
    """Shipped `client_status: {blocked: C}`: whatever its category or VIP flag, a blocked
    client is a C client, to the route, the service and the priority."""
    p = POLICIES[name]
    blocked = replace(profile, crm=replace(profile.crm, record=replace(rec, status=" Blocked ")))
    as_c = replace(profile, crm=replace(profile.crm, record=replace(rec, status="active", vip=False, abc="C")))
    d, c = decide(blocked, p, now), decide(as_c, p, now)
    assert (d.route, d.service, d.priority) == (c.route, c.service, c.priority), explain(d)
    assert "client_status" in [r.rule for r in d.reasons] and "vip" not in [r.rule for r in d.reasons]


@FAST
@given(profile=profiles, rec=record, now=times, name=policies, orders=st.integers(0, 3), deals=st.integers(0, 3))
def test_open_business_makes_a_new_caller_old(profile: CallerProfile, rec: CrmRecord, now: datetime, name: str,
                                              orders: int, deals: int) -> None:
    """A caller the PBX's history has not seen, with open orders or deals in the CRM, is
    decided as the same caller known to history as `old`."""
    p = POLICIES[name]
    profile = replace(profile, number="+79161234567")  # a CRM record means a caller with a number
    active = replace(rec, open_orders=orders, open_deals=deals or (0 if orders else 1))
    new = replace(profile, history=HistoryFacts(SourceStatus.OK, HistoryClass.NEW),
                  crm=replace(profile.crm, record=active))
    old = replace(profile, history=HistoryFacts(SourceStatus.OK, HistoryClass.OLD),
                  crm=replace(profile.crm, record=replace(rec, open_orders=0, open_deals=0)))
    d, o = decide(new, p, now), decide(old, p, now)
    assert (d.route, d.service, d.priority) == (o.route, o.service, o.priority), explain(d)
