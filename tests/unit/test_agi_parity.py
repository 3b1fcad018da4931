"""The same caller, the same events, both fronts: the ARI executor (stasis/execute.py, on the
in-memory ARI) and the FastAGI walker (dialplan/caseline-agi.conf in the dialplan
interpreter) must leave the same steps and result in the decision log."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from ari_app.core.route_trail import outcome_of, parse_userfield
from tests.support.agi_walk import walking
from tests.support.fake_world import A_CLIENT, B_CLIENT, C_CLIENT, policy_with, running

QUICK_MENU = policy_with(ivr__main__timeout_s=1, ivr__main__retries=0)


@dataclass(frozen=True)
class Case:
    number: str
    ari: Callable[[Any, str | None], None]  # sets up the fake Asterisk (phones, presses)
    agi: dict[str, Any]  # the same events for the interpreter
    policy: Any = None


def phones(**behaviour: str) -> Callable[[Any, str | None], None]:
    def setup(fake: Any, call_id: str | None) -> None:
        for name, what in behaviour.items():
            getattr(fake.phone(f"PJSIP/{name}"), what)()
    return setup


def presses(*digits: str) -> Callable[[Any, str | None], None]:
    def setup(fake: Any, call_id: str | None) -> None:
        if call_id is not None:
            fake.presses_during(call_id, "demo-instruct", *digits)
    return setup


CASES = {
    "unreachable_then_busy": Case(A_CLIENT, phones(mgr1="unregistered", sup1="busy"),
                                  {"phones": {"PJSIP/mgr1": "unavailable", "PJSIP/sup1": "busy"}}),
    "b_client_busy": Case(B_CLIENT, phones(mgr2="busy"), {"phones": {"PJSIP/mgr2": "busy"}}),
    "menu_0": Case(C_CLIENT, presses("0"), {"presses": ["0"]}),
    "menu_invalid_then_0": Case(C_CLIENT, presses("9", "0"), {"presses": ["9", "0"]}),
    "menu_1_holder_busy": Case(C_CLIENT, lambda fake, call_id: (
        presses("1")(fake, call_id), phones(mgr2="busy")(fake, call_id)),
        {"presses": ["1"], "phones": {"PJSIP/mgr2": "busy"}}),
    "menu_timeout_voicemail": Case(C_CLIENT, lambda fake, call_id: None, {"presses": [None]}, QUICK_MENU),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
async def test_both_fronts_log_the_same_steps(case: Case) -> None:
    async with running(policy=case.policy) as world:
        fake = world.ari
        case.ari(fake, None)
        call_id = fake.caller_arrives(case.number)
        case.ari(fake, call_id)
        ari = await world.outcome(call_id, timeout=5)

    async with walking(policy=case.policy) as walk:
        call = await walk.call(case.number, **case.agi)
        program = walk.calls.open[call.uniqueid].program
    parsed = parse_userfield(call.userfield)
    assert parsed is not None
    agi = outcome_of(program, parsed[1])
    assert (agi.steps, agi.result, agi.fallbacks) == (ari.steps, ari.result, ari.fallbacks)
