"""Transfers with a real softphone (issue 16 item 7): baresip as a manager's desk phone.

SIPp phones transfer by a scripted REFER; baresip does what a phone does: REFER, waits for
Asterisk's 202 and NOTIFY, then ends its own leg. The manager's phone here listens on mgr1's
lab address, so Asterisk's identify-by-address knows it as mgr1.
"""
from __future__ import annotations

import asyncio
import secrets
import os
from collections.abc import AsyncIterator

import pytest

from labkit import baresip, sipp
from tests.support.ari_observer import observing
from tests.support.callers import C_CLIENT, VIP_A_MGR1
from tests.support.decisions import learned, wait_decision
from tests.support.eventually import eventually
from tests.support.phones import answered_by, start_phones

pytestmark = pytest.mark.lab


@pytest.fixture
async def mgr1_softphone(tmp_path) -> AsyncIterator[baresip.Softphone]:
    if not baresip.available():
        if os.environ.get("CI") == "true":
            pytest.fail("baresip is not installed (scripts/setup-env installs baresip-core)")
        pytest.skip("baresip is not installed")
    ip, port = sipp.PHONES["mgr1"]
    phone = baresip.Softphone("mgr1", tmp_path, f"{ip}:{port}", "<sip:mgr1@127.0.0.1>;regint=0")
    await phone.start()
    try:
        yield phone
    finally:
        await phone.stop()


async def test_a_softphone_blind_transfer_inside_caselines_bridge_keeps_the_client(
        routing, phones, tmp_path, mgr1_softphone):
    """mgr1 (baresip) answers a client Caseline bridged to them and blind-transfers to mgr3:
    the client talks on with mgr3, who then holds the case."""
    phone = mgr1_softphone
    start_phones(phones, tmp_path, mgr3="answer", sup1="answer", op1="answer", op2="answer")
    async with observing(routing.lab) as asterisk_says:
        run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=16_000)
        await phone.wait_event("CALL_INCOMING")
        await phone.command("accept")
        await phone.wait_event("CALL_ESTABLISHED")
        await asyncio.sleep(2)  # the manager talks a little, then presses "transfer"
        await phone.command("transfer", "mgr3")
        await phone.wait_event("CALL_CLOSED")  # the phone ends its leg after Asterisk's NOTIFY
        transfer = await asterisk_says.wait("BridgeBlindTransfer")

    assert transfer["result"] == "Success" and transfer["exten"] == "mgr3"
    assert transfer["replace_channel"]["name"].startswith("Local/mgr3@internal-")
    sip = phone.sip_messages()
    [refer] = [m for m in sip if m.sent and m.method == "REFER" and m.status is None]
    assert refer.headers["Refer-To"].startswith("sip:mgr3@")
    assert [m.status for m in sip if not m.sent and m.method == "REFER"] == [202]
    final = [m for m in sip if not m.sent and m.first_line.startswith("NOTIFY ")][-1]
    assert final.body == "SIP/2.0 200 OK", "Asterisk's NOTIFY reports the transfer went through"
    assert any(m.sent and m.status == 200 and m.headers["CSeq"] == final.headers["CSeq"]
               for m in sip), "and the phone took it"
    assert await run.wait(timeout=40) == [(VIP_A_MGR1, "answered"), (VIP_A_MGR1, "hung_up")]
    await sipp.wait_for_event(phones["mgr3"], VIP_A_MGR1, "bye")
    assert phones["mgr3"].calls_from(VIP_A_MGR1) == ["invite", "answered", "bye"]
    entry = (await wait_decision(routing, 1))[0]
    assert entry["answered_by"] == "mgr3" and entry["steps"] == "mgr1:answered > transfer:mgr3"
    contact = await learned(routing, VIP_A_MGR1)
    assert [t.person for t in contact.talks] == ["mgr1", "mgr3"] and contact.manager == "mgr3"


async def test_a_blind_transfers_new_leg_shows_the_client_before_the_bridge_tells_it(
        routing, phones, tmp_path):
    """Asterisk starts a blind transfer's Local/EXTEN@internal at once; the client's caller ID
    reaches that leg only when its other half has joined the bridge, which may come after the
    Dial. Made here with no bridge at all: a Local leg that names a transferer in
    BLINDTRANSFER, as Asterisk's blind transfer does, still shows mgr3 the client."""
    start_phones(phones, tmp_path, mgr1="answer", mgr3="answer")
    run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=8_000)

    async def mgr1_leg() -> dict:
        legs = [c for c in await routing.lab.channels()
                if c["name"].startswith("PJSIP/mgr1-") and c["state"] == "Up"]
        assert legs, "mgr1 talks with the client"
        return legs[0]

    transferer = await eventually(mgr1_leg, timeout=15)
    leg = f"probe-{secrets.token_hex(4)}"
    async with observing(routing.lab, "caseline-probe") as probe:
        await probe.originate("Local/mgr3@internal", leg, {"BLINDTRANSFER": transferer["name"]})
        await sipp.wait_for_event(phones["mgr3"], VIP_A_MGR1, "answered")
        await probe.request("DELETE", f"/channels/{leg}")
    assert phones["mgr3"].events()[0] == (VIP_A_MGR1, "invite")
    await run.wait(timeout=20)


@pytest.fixture
async def client_softphone(tmp_path) -> AsyncIterator[baresip.Softphone]:
    """A client's softphone on the trunk's address (Asterisk takes it for the trunk)."""
    if not baresip.available():
        if os.environ.get("CI") == "true":
            pytest.fail("baresip is not installed (scripts/setup-env installs baresip-core)")
        pytest.skip("baresip is not installed")
    ip = sipp.CALLER_IP
    phone = baresip.Softphone("client", tmp_path, f"{ip}:{sipp.free_udp_port(ip)}",
                              f"<sip:{C_CLIENT}@127.0.0.1>;regint=0")
    await phone.start()
    try:
        yield phone
    finally:
        await phone.stop()


async def test_a_c_client_presses_0_with_rfc4733_dtmf_and_reaches_an_operator(
        routing, phones, tmp_path, client_softphone):
    phone = client_softphone
    start_phones(phones, tmp_path, op1="answer", op2="answer")
    await phone.command("dial", f"sip:100@{sipp.ASTERISK}")
    await phone.wait_event("CALL_ESTABLISHED")
    await asyncio.sleep(7.5)  # the intro (demo-thanks, 5.5 s), then the menu prompt
    await phone.command("sndcode", "0")  # RFC 4733 telephone-event, as the SDP offered

    async def an_operator_answered() -> None:
        assert answered_by(phones, C_CLIENT), "an operator answered"

    await eventually(an_operator_answered, timeout=15)
    await phone.command("hangup")
    await phone.wait_event("CALL_CLOSED")
    [entry] = await wait_decision(routing, 1)
    assert entry["steps"] == "playback:demo-thanks > ivr:main > ivr:main:0 > queue:operators"


@pytest.fixture
async def op1_softphone(tmp_path) -> AsyncIterator[baresip.Softphone]:
    if not baresip.available():
        if os.environ.get("CI") == "true":
            pytest.fail("baresip is not installed (scripts/setup-env installs baresip-core)")
        pytest.skip("baresip is not installed")
    ip, port = sipp.PHONES["op1"]
    phone = baresip.Softphone("op1", tmp_path, f"{ip}:{port}", "<sip:op1@127.0.0.1>;regint=0")
    await phone.start()
    try:
        yield phone
    finally:
        await phone.stop()


async def test_the_seed_story_with_a_softphone_operator_who_transfers_from_the_queue(
        routing, phones, tmp_path, op1_softphone):
    """"Alena" (op1, baresip) answers a new client from the operators' queue and transfers
    them to mgr2, who talks; the client's next call goes straight to mgr2."""
    phone = op1_softphone
    number = f"+7999{secrets.randbelow(10**7):07d}"  # unknown to the CRM and to history
    start_phones(phones, tmp_path, op2="busy", mgr2="answer")
    run = await sipp.place_calls(tmp_path, [number], hold_ms=16_000)
    await phone.wait_event("CALL_INCOMING")
    await phone.command("accept")
    await phone.wait_event("CALL_ESTABLISHED")
    await asyncio.sleep(2)  # "Alena" asks what it is about, then transfers
    await phone.command("transfer", "mgr2")
    await phone.wait_event("CALL_CLOSED")
    assert await run.wait(timeout=40) == [(number, "answered"), (number, "hung_up")]

    contact = await learned(routing, number)
    assert [t.person for t in contact.talks] == ["op1", "mgr2"] and contact.manager == "mgr2"

    run = await sipp.place_calls(tmp_path, [number], hold_ms=1500)  # straight to mgr2
    assert await run.wait() == [(number, "answered"), (number, "hung_up")]
    entry = (await wait_decision(routing, 2))[0]
    assert (entry["class"], entry["owner"], entry["answered_by"]) == ("repeat", "mgr2", "mgr2")
    assert phone.kinds().count("CALL_INCOMING") == 1  # the operator was not rung again
