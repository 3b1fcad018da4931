"""Learning who holds the case from real calls: transfers (SIP REFER from a SIPp phone, as a
desk phone's transfer key sends it), queue answers, FastAGI-routed calls, short talks.

Each call's history is what Caseline learned from Asterisk's own CDRs (AMI, linkedid); each
test then places the client's next call and checks it reaches the person who talked.
"""
from __future__ import annotations

import secrets

import pytest

from labkit import sipp
from tests.support.callers import VIP_A_MGR1
from tests.support.decisions import learned, wait_decision
from tests.support.phones import start_phones

pytestmark = pytest.mark.lab


def fresh_number() -> str:
    """A client unknown to the CRM and to every earlier run: routed by history alone."""
    return f"+7999{secrets.randbelow(10**7):07d}"


def restart(phones: dict[str, sipp.Phone], tmp_path, **behaviours: str) -> None:
    for name in behaviours:
        phones[name].stop()
    start_phones(phones, tmp_path, **behaviours)


async def call(tmp_path, number: str, hold_ms: int, **kwargs) -> None:  # type: ignore[no-untyped-def]
    run = await sipp.place_calls(tmp_path, [number], hold_ms=hold_ms, **kwargs)
    assert await run.wait(timeout=60) == [(number, "answered"), (number, "hung_up")]


async def test_the_seed_story_alena_transfers_once_and_the_manager_holds_the_case(
        routing, phones, tmp_path):
    """The article's story: the first call reaches an operator, who transfers the client to a
    manager; from the second call on the client goes straight to that manager; while the
    manager is busy, a client with no category steps down to the operators."""
    number = fresh_number()
    start_phones(phones, tmp_path, op1="transfer>mgr2:2000", op2="transfer>mgr2:2000",
                 mgr2="answer", sup1="answer")
    await call(tmp_path, number, hold_ms=16_000)  # ~2 s with the operator, ~13 s with mgr2

    first = await learned(routing, number)
    assert [t.person for t in first.talks][-1] == "mgr2" and first.talks[0].person in ("op1", "op2")
    assert first.manager == "mgr2" and first.talks[-1].seconds >= 10
    [entry] = await wait_decision(routing, 1)
    assert entry["route"] == "queue:operators" and entry["answered_by"] == "mgr2"

    await call(tmp_path, number, hold_ms=2000)  # second call: straight to mgr2, no operator
    entry = (await wait_decision(routing, 2))[0]
    assert (entry["class"], entry["owner"]) == ("repeat", "mgr2")
    assert entry["route"].startswith("manager:mgr2") and entry["steps"] == "mgr2:answered"
    assert phones["mgr2"].calls_from(number).count("invite") == 2

    restart(phones, tmp_path, mgr2="busy", op1="answer", op2="answer")
    await call(tmp_path, number, hold_ms=1000)  # third call, mgr2 busy: step down
    entry = (await wait_decision(routing, 3))[0]
    assert entry["steps"] == "mgr2:busy > queue:operators" and entry["fallbacks"] == "busy"


async def test_a_manager_transfers_inside_caselines_bridge_and_the_client_stays(
        routing, phones, tmp_path):
    """A blind transfer mgr1 -> mgr3 inside the bridge Caseline made: the client is not hung
    up when mgr1's phone leaves; they talk with mgr3, who then holds the case."""
    number = fresh_number()
    start_phones(phones, tmp_path, op1="transfer>mgr1:1500", op2="transfer>mgr1:1500",
                 mgr1="answer", mgr3="answer")
    await call(tmp_path, number, hold_ms=14_000)
    assert (await learned(routing, number)).manager == "mgr1"

    restart(phones, tmp_path, mgr1="transfer>mgr3:2000")
    await call(tmp_path, number, hold_ms=15_000)  # the client talks on with mgr3 (~13 s)
    assert phones["mgr1"].calls_from(number)[-2:] == ["transferred", "bye"]
    await sipp.wait_for_event(phones["mgr3"], number, "bye")  # hung up with the client
    assert phones["mgr3"].calls_from(number) == ["invite", "answered", "bye"]
    entry = (await wait_decision(routing, 2))[0]
    assert entry["outcome"] == "answered" and entry["answered_by"] == "mgr3"
    assert entry["steps"] == "mgr1:answered > transfer:mgr3"
    contact = await learned(routing, number, calls=2)
    assert [t.person for t in contact.talks] == ["mgr1", "mgr3"] and contact.manager == "mgr3"

    await call(tmp_path, number, hold_ms=1500)  # the next call reaches mgr3 directly
    entry = (await wait_decision(routing, 3))[0]
    assert entry["route"].startswith("manager:mgr3") and entry["answered_by"] == "mgr3"


async def test_a_transfer_nobody_answers_brings_the_client_back_to_the_route(
        routing, phones, tmp_path):
    """mgr1 transfers a VIP client to a busy mgr3: the client is not lost (the vip chain goes
    on to the supervisor) and mgr3, who never talked, holds nothing."""
    start_phones(phones, tmp_path, mgr1="transfer>mgr3:1500", mgr3="busy", sup1="answer",
                 op1="answer", op2="answer")
    await call(tmp_path, VIP_A_MGR1, hold_ms=6000)
    entry = (await wait_decision(routing, 1))[0]
    assert entry["steps"] == "mgr1:transfer_failed > transfer:mgr3 > transfer:no_answer > sup1:answered"
    assert entry["answered_by"] == "sup1"
    contact = await learned(routing, VIP_A_MGR1)
    assert "mgr3" not in [t.person for t in contact.talks] and contact.manager != "mgr3"
    assert [t.person for t in contact.talks] == ["mgr1", "sup1"]


async def test_a_fastagi_routed_call_is_learned_like_any_other(routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="answer", op1="answer", op2="answer")
    await call(tmp_path, VIP_A_MGR1, hold_ms=11_000, service="9100")  # dialplan Dial via AGI
    contact = await learned(routing, VIP_A_MGR1)
    assert [t.person for t in contact.talks] == ["mgr1"] and contact.manager == "mgr1"


async def test_a_three_second_talk_makes_no_case_holder(routing, phones, tmp_path):
    number = fresh_number()
    start_phones(phones, tmp_path, op1="transfer>mgr2:2000", op2="transfer>mgr2:2000",
                 mgr2="answer")
    await call(tmp_path, number, hold_ms=5000)  # ~2 s operator, ~3 s mgr2
    contact = await learned(routing, number)
    assert contact.talks[-1].person == "mgr2" and contact.talks[-1].seconds < 10
    assert contact.manager is None

    restart(phones, tmp_path, op1="answer", op2="answer")
    await call(tmp_path, number, hold_ms=1000)  # nobody holds the case: the operators again
    entry = (await wait_decision(routing, 2))[0]
    assert entry["class"] == "repeat" and entry["route"] == "queue:operators"


async def test_a_transfer_to_an_external_number_keeps_the_client_and_makes_no_false_holder(
        routing, phones, tmp_path):
    """mgr1 talks 11 s, then blind-transfers the client to an outside number (the trunk):
    the client talks on with that number; the outside party is nobody's person, so mgr1,
    who talked long enough, still holds the case; the listener lives on."""
    number = fresh_number()
    outside = "+79990001111"
    start_phones(phones, tmp_path, op1="transfer>mgr1:1500", op2="transfer>mgr1:1500",
                 mgr1="answer")
    await call(tmp_path, number, hold_ms=14_000)  # an operator passes the client to mgr1
    assert (await learned(routing, number)).manager == "mgr1"

    restart(phones, tmp_path, mgr1=f"transfer>{outside}:11000")
    phones["client"] = outside_phone = sipp.Phone("client", tmp_path, "answer").start(*sipp.CLIENT_PHONE)
    await call(tmp_path, number, hold_ms=16_000)  # 11 s with mgr1, then with the outside party
    assert phones["mgr1"].calls_from(number)[-2:] == ["transferred", "bye"]
    await sipp.wait_for_event(outside_phone, number, "bye")  # shown the client's number
    assert outside_phone.calls_from(number) == ["invite", "answered", "bye"]
    contact = await learned(routing, number, calls=2)
    assert [t.person for t in contact.talks] == ["mgr1"] and contact.manager == "mgr1"
    assert routing.process.poll() is None


async def test_an_attended_transfer_from_the_queue_makes_the_manager_the_holder(
        routing, phones, tmp_path):
    """op1 answers from the queue, calls mgr2 to announce the client (a consultation), then
    completes the transfer (REFER with Replaces): mgr2 talks with the client and holds the
    case; the client's next call goes straight to mgr2."""
    number = fresh_number()
    start_phones(phones, tmp_path, op1="attended>mgr2:1500", op2="busy", mgr2="answer")
    await call(tmp_path, number, hold_ms=18_000)  # 1.5 s op1, 2 s consult, then ~14 s mgr2
    assert phones["op1"].calls_from(number)[-3:] == ["consulting", "transferred", "bye"]

    contact = await learned(routing, number)
    assert [t.person for t in contact.talks] == ["op1", "mgr2"] and contact.manager == "mgr2"

    restart(phones, tmp_path, op1="answer")
    await call(tmp_path, number, hold_ms=1500)
    entry = (await wait_decision(routing, 2))[0]
    assert (entry["class"], entry["owner"], entry["answered_by"]) == ("repeat", "mgr2", "mgr2")


async def test_an_attended_transfer_inside_caselines_bridge_keeps_the_client(
        routing, phones, tmp_path):
    """mgr1, bridged with a client by Caseline, calls mgr3 to consult, then completes the
    transfer: the client talks on with mgr3 (Asterisk reports BridgeAttendedTransfer to the
    app), who then holds the case; the client's next call goes to mgr3."""
    number = fresh_number()
    start_phones(phones, tmp_path, op1="transfer>mgr1:1500", op2="transfer>mgr1:1500",
                 mgr1="answer", mgr3="answer")
    await call(tmp_path, number, hold_ms=14_000)
    assert (await learned(routing, number)).manager == "mgr1"

    restart(phones, tmp_path, mgr1="attended>mgr3:2000")
    await call(tmp_path, number, hold_ms=18_000)  # 2 s mgr1, 2 s consult, ~14 s mgr3
    assert phones["mgr1"].calls_from(number)[-3:] == ["consulting", "transferred", "bye"]
    entry = (await wait_decision(routing, 2))[0]
    assert entry["outcome"] == "answered" and entry["answered_by"] == "mgr3", entry
    contact = await learned(routing, number, calls=2)
    assert [t.person for t in contact.talks] == ["mgr1", "mgr3"] and contact.manager == "mgr3"

    await call(tmp_path, number, hold_ms=1500)
    entry = (await wait_decision(routing, 3))[0]
    assert entry["route"].startswith("manager:mgr3") and entry["answered_by"] == "mgr3"
