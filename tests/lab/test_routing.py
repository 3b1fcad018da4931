"""Real calls routed by Caseline through the lab: SIPp callers and phones, real Asterisk, real Redis.

Which phone got which call is read from the phones' own SIPp logs; what Caseline decided
is read from its decision log in Redis (the same one `caseline calls` shows).
"""
from __future__ import annotations

import pytest

from labkit import sipp
from tests.support.callers import C_CLIENT, DELIVERY_MGR3, UNKNOWN, VIP_A_MGR1
from tests.support.decisions import wait_decision
from tests.support.lab import new_cdr_rows
from tests.support.phones import start_phones

pytestmark = pytest.mark.lab


async def test_a_client_goes_straight_to_their_manager(routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="answer:300", op1="answer", op2="answer")
    run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=1500)
    assert await run.wait() == [(VIP_A_MGR1, "answered"), (VIP_A_MGR1, "hung_up")]

    await sipp.wait_for_event(phones["mgr1"], VIP_A_MGR1, "bye")
    assert phones["mgr1"].calls_from(VIP_A_MGR1) == ["invite", "answered", "bye"]
    assert phones["op1"].events() == [] and phones["op2"].events() == []
    [entry] = await wait_decision(routing, 1)
    assert entry["outcome"] == "answered" and entry["answered_by"] == "mgr1"
    assert entry["service"] == "manager" and entry["route"].startswith("manager:mgr1")


async def test_busy_manager_of_a_vip_escalates_to_the_supervisor(routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="busy", sup1="answer", op1="answer", op2="answer")
    run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=1000)
    assert await run.wait() == [(VIP_A_MGR1, "answered"), (VIP_A_MGR1, "hung_up")]

    assert phones["mgr1"].calls_from(VIP_A_MGR1) == ["invite", "busy"]
    await sipp.wait_for_event(phones["sup1"], VIP_A_MGR1, "bye")
    assert phones["sup1"].calls_from(VIP_A_MGR1) == ["invite", "answered", "bye"]
    [entry] = await wait_decision(routing, 1)
    assert entry["answered_by"] == "sup1" and entry["fallbacks"] == "busy"


@pytest.mark.routing(defaults__ring_timeout_s=4)
async def test_unanswered_manager_steps_down_to_the_operators_queue(routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr3="noanswer", op1="answer", op2="answer")
    config = routing  # shipped chain "standard": no answer -> operators
    run = await sipp.place_calls(tmp_path, [DELIVERY_MGR3], hold_ms=1000)
    assert await run.wait() == [(DELIVERY_MGR3, "answered"), (DELIVERY_MGR3, "hung_up")]

    assert phones["mgr3"].calls_from(DELIVERY_MGR3) == ["invite", "cancelled"]
    answered = [n for n in ("op1", "op2") if "answered" in phones[n].calls_from(DELIVERY_MGR3)]
    assert len(answered) == 1
    [entry] = await wait_decision(config, 1)
    assert entry["outcome"] == "queue" and entry["fallbacks"] == "no_answer"


async def test_a_new_caller_goes_to_the_operators_with_priority(routing, phones, tmp_path):
    start_phones(phones, tmp_path, op1="answer", op2="answer")
    known = len(routing.lab.cdr_rows(UNKNOWN))  # CDRs of earlier runs stay in Master.csv
    run = await sipp.place_calls(tmp_path, [UNKNOWN], hold_ms=800)
    assert await run.wait() == [(UNKNOWN, "answered"), (UNKNOWN, "hung_up")]

    [entry] = await wait_decision(routing, 1)
    assert entry["class"] == "new" and entry["service"] == "operator"
    assert entry["outcome"] == "queue"
    cdr = (await new_cdr_rows(routing.lab, UNKNOWN, known))[-1]
    assert cdr[7] == "Queue" and cdr[6].startswith(("PJSIP/op1", "PJSIP/op2"))


async def test_caller_hanging_up_stops_the_managers_phone_at_once(routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="noanswer")
    run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], cancel_after_ring_ms=1500)
    assert await run.wait() == [(VIP_A_MGR1, "ringing"), (VIP_A_MGR1, "cancelled")]

    await sipp.wait_for_event(phones["mgr1"], VIP_A_MGR1, "cancelled", timeout=3)
    [entry] = await wait_decision(routing, 1)
    assert entry["outcome"] == "caller_hung_up"


async def test_a_c_client_hears_the_menu_and_presses_0_for_an_operator(routing, phones, tmp_path):
    start_phones(phones, tmp_path, op1="answer", op2="answer", mgr2="answer")
    # the intro (demo-thanks) lasts 5.5 s; the digit comes during the menu prompt
    run = await sipp.place_calls(tmp_path, [C_CLIENT], hold_ms=1000, dtmf=("0", 7500))
    assert await run.wait() == [(C_CLIENT, "answered"), (C_CLIENT, "hung_up")]

    answered = [n for n in ("op1", "op2") if "answered" in phones[n].calls_from(C_CLIENT)]
    assert len(answered) == 1 and phones["mgr2"].events() == []
    [entry] = await wait_decision(routing, 1)
    assert entry["service"] == "self_service"  # C defence: recording first, operator on request
    assert entry["steps"] == "playback:demo-thanks > ivr:main > ivr:main:0 > queue:operators"


@pytest.mark.routing(defaults__ringback="moh")
async def test_music_on_hold_while_the_manager_rings_then_bridge(routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="answer:1500")
    run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=4000)
    assert await run.wait() == [(VIP_A_MGR1, "answered"), (VIP_A_MGR1, "hung_up")]

    await sipp.wait_for_event(phones["mgr1"], VIP_A_MGR1, "bye")
    [entry] = await wait_decision(routing, 1)
    assert entry["answered_by"] == "mgr1"
    # with music the caller is answered at once (SIPp saw 200 before the manager's phone
    # did), so the manager talked for less than the caller's 4 s
    assert 1 <= int(entry["talk_s"]) <= 3


async def test_a_manager_on_their_own_call_is_not_rung(routing, phones, tmp_path):
    """mgr1 is talking on a call Caseline did not place: Asterisk's endpoint view says busy."""
    start_phones(phones, tmp_path, mgr1="answer", sup1="answer")
    client = sipp.Phone("client", tmp_path, "answer").start(*sipp.CLIENT_PHONE)
    phones["client"] = client
    own_call = await sipp.place_calls(tmp_path, ["mgr1"], service="+79990001199",
                                      from_phone="mgr1", hold_ms=6000)
    await sipp.wait_for_event(client, "mgr1", "answered")

    run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=300)
    assert await run.wait() == [(VIP_A_MGR1, "answered"), (VIP_A_MGR1, "hung_up")]
    await sipp.wait_for_event(phones["sup1"], VIP_A_MGR1, "bye")
    assert phones["mgr1"].calls_from(VIP_A_MGR1) == []
    [entry] = await wait_decision(routing, 1)
    assert entry["steps"] == "mgr1:busy > sup1:answered"
    await own_call.wait()


async def test_an_invalid_menu_choice_is_said_and_the_menu_asked_again(routing, phones, tmp_path):
    start_phones(phones, tmp_path, op1="answer", op2="answer")
    # 9 is no option: pbx-invalid (4.4 s), the menu again, then 0
    run = await sipp.place_calls(tmp_path, [C_CLIENT], hold_ms=500, dtmf=("90", 7500, 6000))
    assert await run.wait() == [(C_CLIENT, "answered"), (C_CLIENT, "hung_up")]

    [entry] = await wait_decision(routing, 1)
    assert entry["steps"] == ("playback:demo-thanks > ivr:main > ivr:main:invalid > "
                              "ivr:main:0 > queue:operators")
