"""The route program (core/route_program.py) and its trail (core/route_trail.py), pure: what
the FastAGI front sends in its one SET VARIABLE, and how the dialplan's trail reads back."""
from __future__ import annotations

import re

import pytest

from agi.variables import route_command
from ari_app.core.decide import decide
from ari_app.core.models import (
    CallerProfile, CrmFacts, Decision, DialResult, OutcomeResult, RouteStep, Service,
    SourceStatus, StepKind,
)
from ari_app.core.route_program import MAX_IVR_DEPTH, MAX_ROUTE_BYTES, compile_route
from ari_app.core.route_trail import outcome_of, parse_userfield
from ari_app.stasis import execute
from tests.support.fake_world import A_CLIENT, B_CLIENT, C_CLIENT, CLIENTS, NEW_CALLER, NOW, policy_with

POLICY = policy_with()  # the shipped routing.yaml


def endpoint_of(person: str) -> str | None:
    return POLICY.endpoint_of(person) if POLICY.person(person) else None


def program_for(number: str, policy=POLICY):
    profile = CallerProfile(number, crm=CrmFacts(SourceStatus.OK, CLIENTS[number]) if number in CLIENTS
                            else CrmFacts(SourceStatus.UNKNOWN))
    return compile_route(decide(profile, policy, NOW), profile, endpoint_of=endpoint_of, policy=policy)


def test_the_shipped_routes_in_one_line_each() -> None:
    """One SET VARIABLE per decision, and small: the bytes on the wire per call."""
    lines = {number: program_for(number).encode() for number in (A_CLIENT, B_CLIENT, C_CLIENT, NEW_CALLER)}
    assert lines[A_CLIENT] == "ok:70::1|m:PJSIP/mgr1:30:1:1:1|m:PJSIP/sup1:20:2:2:2|q:operators"
    assert lines[B_CLIENT] == "ok:50::1|m:PJSIP/mgr2:25:1:1:1|q:operators"
    assert lines[NEW_CALLER] == "ok:20::1|q:operators"
    # the C client's: the recording, the menu (1: holder then operators, 0, 2: callback,
    # timeout: voicemail), each option's route placed after the menu
    assert lines[C_CLIENT] == ("ok:10::1|p:demo-thanks|i:demo-instruct:pbx-invalid:5:3:1:1=2/0=4/2=5:6|"
                               "m:PJSIP/mgr2:25:3:3:3|q:operators|q:operators|c:queue-thankyou|"
                               "v:1000@default")
    sizes = [len(route_command(program_for(n)) + "\n") for n in lines]
    assert max(sizes) < 200  # vs 11 commands of ~40-70 bytes, each waiting for its answer


def test_a_person_without_a_usable_endpoint_is_sent_but_never_dialled() -> None:
    decision = Decision(Service.MANAGER, 5, (RouteStep(StepKind.MANAGER, "mgr1", 20, 1, 1, 1),
                                              RouteStep(StepKind.QUEUE, "operators")), ())
    for endpoint in (None, "PJSIP/mgr1,,U(x)", "Local/x@y", "PJSIP/a b"):
        program = compile_route(decision, CallerProfile(None), endpoint_of=lambda _, e=endpoint: e)
        assert program.encode() == "ok:5::1|m::20:1:1:1|q:operators"  # the dialplan: unavailable


def test_ring_time_and_options() -> None:
    decision = Decision(Service.MANAGER, 150, (RouteStep(StepKind.MANAGER, "mgr1", 500, 1, None, 1),
                                               RouteStep(StepKind.HANGUP, "")), ())
    program = compile_route(decision, CallerProfile(None), endpoint_of=endpoint_of, busy_check=False)
    assert program.encode() == "ok:100::0|m:PJSIP/mgr1:120:1::1|x"
    moh = policy_with(defaults__ringback="moh", defaults__moh_class="quiet-1")
    assert program_for(B_CLIENT, moh).encode().startswith("ok:50:quiet-1:1|")


def test_menus_nest_to_the_executors_depth_then_the_operators() -> None:
    assert MAX_IVR_DEPTH == execute.MAX_IVR_DEPTH
    loop = {"main": {"prompt": "demo-instruct", "options": {"9": "ivr:main"}, "on_timeout": "hangup"}}
    program = program_for(C_CLIENT, policy_with(ivr=loop))
    kinds = [step.kind for step in program.steps]
    assert kinds.count(StepKind.IVR) == MAX_IVR_DEPTH
    assert kinds[-2:] == [StepKind.QUEUE, StepKind.HANGUP]  # the fourth menu: operators


def test_every_jump_of_a_program_points_inside_it() -> None:
    program = program_for(C_CLIENT)
    for step in program.steps:
        targets = [step.on_busy, step.on_no_answer, step.on_unavailable]
        if step.menu:
            targets += [index for _, index in step.menu.options] + [step.menu.on_timeout]
        assert all(t is None or 0 <= t < len(program.steps) for t in targets)


def test_a_route_too_long_for_one_line_loses_its_deeper_menus_first() -> None:
    options = {str(d): [f"manager:mgr{1 + d % 3}", "queue:operators"] for d in range(40)}
    menus = {"main": {"prompt": "demo-instruct", "options": {**options, "*": "ivr:more"}},
             "more": {"prompt": "demo-instruct", "options": {**options, "*": "ivr:main"}}}
    program = program_for(C_CLIENT, policy_with(ivr=menus))
    assert len(program.encode()) <= MAX_ROUTE_BYTES
    assert [s.kind for s in program.steps].count(StepKind.IVR) < MAX_IVR_DEPTH
    assert re.fullmatch(r"[A-Za-z0-9_:|/=.*#@-]+", program.encode())
    route_command(program)  # within the variable's whitelist


# -- the trail -------------------------------------------------------------------------------


@pytest.mark.parametrize(("trail", "steps", "result", "answered_by", "fallbacks"), [
    ("0b.1a.", ["mgr1:busy", "sup1:answered"], OutcomeResult.ANSWERED, "sup1", [DialResult.BUSY]),
    ("0n.1u.2q.", ["mgr1:no_answer", "sup1:unavailable", "queue:operators"], OutcomeResult.QUEUE, None,
     [DialResult.NO_ANSWER, DialResult.UNAVAILABLE]),
    ("0h.", ["mgr1:caller_hung_up"], OutcomeResult.CALLER_HUNG_UP, None, []),
    ("o.", ["queue:operators"], OutcomeResult.QUEUE, None, []),
    ("0b.9q.junk.1a", ["mgr1:busy", "sup1:answered"], OutcomeResult.ANSWERED, "sup1", [DialResult.BUSY]),
])
def test_a_persons_trail_reads_as_the_executor_records_it(trail, steps, result, answered_by, fallbacks) -> None:
    outcome = outcome_of(program_for(A_CLIENT), trail)
    assert (outcome.steps, outcome.result, outcome.answered_by, outcome.fallbacks) == (
        steps, result, answered_by, fallbacks)


def test_a_menus_trail() -> None:
    program = program_for(C_CLIENT)
    assert outcome_of(program, "0p.1i.1=1.2a.").steps == [
        "playback:demo-thanks", "ivr:main", "ivr:main:invalid", "ivr:main:1", "mgr2:answered"]
    assert outcome_of(program, "0p.1t.6v.").steps == [
        "playback:demo-thanks", "ivr:main", "ivr:main:timeout", "voicemail:1000@default"]
    filed = outcome_of(program, "0p.1=2.5c.", callback_id="a1b2c3")
    assert (filed.steps[-1], filed.result) == ("callback:a1b2c3", OutcomeResult.CALLBACK)


@pytest.mark.parametrize(("userfield", "parsed"), [
    ("caseline-agi:ok:0b.1a.", ("ok", "0b.1a.")),
    ("caseline-agi:agi_timeout:o.", ("agi_timeout", "o.")),
    ("caseline:shed", None),
    ("caseline-agi:ok:0b;DROP", None),
    ("caseline-agi:ok:" + "0b." * 100, None),  # longer than a userfield holds: not ours
])
def test_userfields(userfield, parsed) -> None:
    assert parse_userfield(userfield) == parsed
