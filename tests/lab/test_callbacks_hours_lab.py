"""Callback requests, working hours and holidays with real calls (issue 17 items 8 and 9).

- A website's "call me back" (POST /callbacks): while the company is open the dialler rings
  the holder first, then the client through the trunk showing the company's caller ID;
  the client's return call classifies as `callback` and reaches that holder.
- A C client presses 2 in the IVR ("call me back instead of waiting"): a request is filed.
- Closed hours and a public holiday of our own: the call takes the after-hours route (the
  "closed" recording, then voicemail or a callback request) and ends where the policy says.
"""
from __future__ import annotations

import secrets
from datetime import datetime
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from labkit import sipp
from tests.support.callers import C_CLIENT, UNKNOWN, VIP_A_MGR1
from tests.support.decisions import wait_decision
from tests.support.eventually import eventually
from tests.support.ops import OPS, auth, ops_get
from tests.support.phones import start_phones

pytestmark = pytest.mark.lab

COMPANY_CALLER_ID = "+74950000000"  # company.caller_id of the shipped routing.yaml
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NOW_IN_MOSCOW = datetime.now(ZoneInfo("Europe/Moscow"))  # the shipped company.timezone
# open half an hour a day, twelve hours away from now: closed for the test's whole run
_FAR = (NOW_IN_MOSCOW.hour + 12) % 24
CLOSED_NOW = {f"hours__{day}": [f"{_FAR:02d}:00-{_FAR:02d}:30"] for day in DAYS}
OPEN_ALL_WEEK = {f"hours__{day}": ["00:00-24:00"] for day in DAYS}
TODAY_IN_MOSCOW = NOW_IN_MOSCOW.date().isoformat()


async def callbacks(status: str = "") -> list[dict]:
    listed = await ops_get(f"/callbacks{'?status=' + status if status else ''}")
    return listed["callbacks"]


async def hang_up_the_client(lab) -> None:
    """The client ends the call-back (SIPp phones wait for a BYE): their trunk leg hangs up."""
    async def trunk_leg() -> str:
        legs = [c["id"] for c in await lab.channels()
                if c["name"].startswith("PJSIP/trunk-") and c["id"].startswith("cb-")]
        assert legs, "the client's leg"
        return legs[0]

    lab.ari("DELETE", f"/channels/{await eventually(trunk_leg, timeout=10)}")


async def test_a_requested_callback_rings_the_holder_then_the_client_who_calls_back_as_callback(
        routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="answer", sup1="answer", op1="answer", op2="answer")
    phones["client"] = client = sipp.Phone("client", tmp_path, "answer").start(*sipp.CLIENT_PHONE)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{OPS}/callbacks", headers=auth(),
                             json={"number": VIP_A_MGR1, "reason": "website form"}) as answer:
            assert answer.status == 201, await answer.text()
            filed = (await answer.json())["callback"]
    assert filed["holder"] == "mgr1"

    # open 24/7 in the lab: the dialler places it at its next poll; the holder first
    await sipp.wait_for_event(phones["mgr1"], VIP_A_MGR1, "answered", timeout=20)
    # then the client, who sees the company's number, not the manager's
    await sipp.wait_for_event(client, COMPANY_CALLER_ID, "answered", timeout=15)
    await hang_up_the_client(routing.lab)

    async def done() -> None:
        [request] = [c for c in await callbacks() if c["id"] == filed["id"]]
        assert request["status"] == "done", request

    await eventually(done, timeout=15)

    # the client's return call: a callback of mgr1's (they talked), straight to mgr1
    run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=500)
    assert await run.wait() == [(VIP_A_MGR1, "answered"), (VIP_A_MGR1, "hung_up")]
    [entry] = await wait_decision(routing, 1)
    assert entry["class"] == "callback" and entry["owner"] == "mgr1"
    assert entry["answered_by"] == "mgr1"


async def test_a_c_client_who_presses_2_files_a_callback_request(routing, phones, tmp_path):
    start_phones(phones, tmp_path, op1="answer", op2="answer")
    # the intro (demo-thanks) lasts 5.5 s; 2 comes during the menu prompt
    run = await sipp.place_calls(tmp_path, [C_CLIENT], hold_ms=8000, dtmf=("2", 7500))
    events = [e for _, e in await run.wait()]
    assert events[0] == "answered" and events[-1] in ("hung_up", "remote_hangup"), events

    [entry] = await wait_decision(routing, 1)
    assert "ivr:main:2" in entry["steps"] and "callback" in entry["steps"], entry
    # filed for this number (open 24/7, the dialler may already be placing it)
    requests = [c for c in await callbacks() if c["number"].endswith(C_CLIENT[-4:])]
    assert len(requests) == 1 and requests[0]["reason"].startswith("ivr"), requests


def fresh_number() -> str:
    return f"+7999{secrets.randbelow(10**7):07d}"  # unknown to the CRM: new, to the operators


async def in_the_queue(lab, number: str) -> str:
    """The channel id of `number`'s call once it waits in Queue() (for eventually())."""
    waiting = [c["id"] for c in await lab.channels()
               if c["caller"]["number"] == number and c["dialplan"]["app_name"] == "Queue"]
    assert waiting, f"{number} waits in the queue"
    return waiting[0]


async def turn_in_the_queue(lab) -> None:
    assert any(c["name"].startswith("Local/") and "@caseline-callback-turn" in c["name"]
               and c["dialplan"]["app_name"] == "Queue" for c in await lab.channels()), "the turn waits"


async def talking_with_op1(op1: sipp.Phone, number: str) -> None:
    assert "answered" in op1.calls_from(number), f"op1 answered {number}"


# New callers get the IVR menu here ("0": the operators, "2": a call-back), so that the
# callers around the one who chooses a call-back are new as well: the same priority, no
# holder, and only the order of arrival decides.
@pytest.mark.routing(rules__classes__new__target="ivr:main")
async def test_an_ivr_call_back_keeps_the_callers_turn_in_the_queue(routing, phones, tmp_path):
    """op1 alone answers the queue. While op1 talks with A: B queues, then C presses 2 (call
    me back) and hangs up, then D queues. op1 then serves B, then calls C back, then serves
    D: the call-back was placed when the queue reached C's turn."""
    lab = routing.lab
    start_phones(phones, tmp_path, op1="answer", op2="busy")
    op1 = phones["op1"]
    phones["client"] = client = sipp.Phone("client", tmp_path, "answer").start(*sipp.CLIENT_PHONE)
    a, b, c, d = (fresh_number() for _ in range(4))
    to_the_operators = {"hold_ms": 120_000, "dtmf": ("0", 7500)}  # after the intro, in the menu

    runs = [await sipp.place_calls(tmp_path, [a], **to_the_operators)]
    await sipp.wait_for_event(op1, a, "answered", timeout=25)
    runs.append(await sipp.place_calls(tmp_path, [b], **to_the_operators))
    await eventually(in_the_queue, lab, b, timeout=20)
    chooser = await sipp.place_calls(tmp_path, [c], hold_ms=8000, dtmf=("2", 7500))
    await chooser.wait(timeout=30)
    await eventually(turn_in_the_queue, lab, timeout=15)
    runs.append(await sipp.place_calls(tmp_path, [d], **to_the_operators))
    d_leg = await eventually(in_the_queue, lab, d, timeout=20)

    lab.ari("DELETE", f"/channels/{await in_the_queue_or_talking(lab, a)}")  # A is done
    await eventually(talking_with_op1, op1, b, timeout=20)
    lab.ari("DELETE", f"/channels/{await in_the_queue_or_talking(lab, b)}")  # B is done
    # C's turn: op1 is connected to C's stand-in (showing C's number), then C is called
    await eventually(talking_with_op1, op1, c, timeout=20)
    await sipp.wait_for_event(client, COMPANY_CALLER_ID, "answered", timeout=20)
    assert d_leg in [ch["id"] for ch in await lab.channels()], "D still waits meanwhile"
    await hang_up_the_client(lab)
    await eventually(talking_with_op1, op1, d, timeout=20)

    answered = [number for number, event in op1.events() if event == "answered"]
    assert answered == [a, b, c, d]

    async def done_by_op1() -> None:
        [request] = [r for r in await callbacks() if r["number"].endswith(c[-4:])]
        assert (request["status"], request["person"]) == ("done", "op1"), request

    await eventually(done_by_op1, timeout=15)
    lab.ari("DELETE", f"/channels/{await in_the_queue_or_talking(lab, d)}")
    for run in runs:
        await run.wait(timeout=20)


async def in_the_queue_or_talking(lab, number: str) -> str:
    legs = [c["id"] for c in await lab.channels()
            if c["caller"]["number"] == number and c["name"].startswith("PJSIP/trunk-")]
    assert legs, f"{number}'s call"
    return legs[0]


@pytest.mark.routing(hours__enabled=True, **CLOSED_NOW,
                     hours__after_hours={"action": "voicemail", "intro": "closed",
                                         "mailbox": "general"})
async def test_closed_hours_send_the_call_to_voicemail_where_the_message_is_kept(
        routing, phones, tmp_path):
    start_phones(phones, tmp_path, op1="answer", op2="answer")
    inbox = routing.lab.root / "var/spool/asterisk/voicemail/default/1000/INBOX"
    before = set(inbox.glob("msg*.txt")) if inbox.exists() else set()
    # "nobody is available" (closed), the mailbox's greeting, then the message
    run = await sipp.place_calls(tmp_path, [UNKNOWN], hold_ms=18000, speaks=True)
    assert await run.wait() == [(UNKNOWN, "answered"), (UNKNOWN, "hung_up")]

    [entry] = await wait_decision(routing, 1)
    assert entry["route"] == "playback:vm-nobodyavail > voicemail:1000@default", entry
    assert any(r.startswith("hours") for r in reasons_of(entry)), entry
    assert not any(phone.events() for phone in phones.values())

    def new_message() -> list:
        messages = set(inbox.glob("msg*.txt")) - before if inbox.exists() else set()
        assert messages, f"a new message in {inbox}"
        return sorted(messages)

    await eventually(new_message, timeout=10)


@pytest.mark.routing(hours__enabled=True, **OPEN_ALL_WEEK, hours__holidays=[TODAY_IN_MOSCOW],
                     hours__after_hours={"action": "callback_request", "intro": "closed"})
async def test_on_our_own_holiday_the_caller_hears_closed_and_a_callback_is_filed(
        routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="answer", op1="answer", op2="answer")
    run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=8000)
    events = [e for _, e in await run.wait()]
    assert events[0] == "answered", events

    [entry] = await wait_decision(routing, 1)
    assert "callback" in entry["steps"], entry
    assert any("holiday" in text for text in reasons_of(entry).values()), entry
    assert not any(phone.events() for phone in phones.values())  # closed: nobody rung
    [request] = await callbacks("open")
    assert request["holder"] == "mgr1" and request["number"].endswith(VIP_A_MGR1[-4:])


def reasons_of(entry: dict) -> dict[str, str]:
    """The decision log entry's reasons as {rule: text}."""
    import json
    reasons = entry["reasons"]
    if isinstance(reasons, str):
        reasons = json.loads(reasons)
    return {r["rule"] if isinstance(r, dict) else r[0]: r["text"] if isinstance(r, dict) else r[1]
            for r in reasons}
