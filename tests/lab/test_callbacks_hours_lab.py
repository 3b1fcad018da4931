"""Callback requests, working hours and holidays with real calls (issue 17 items 8 and 9).

- A website's "call me back" (POST /callbacks): while the company is open the dialler rings
  the holder first, then the client through the trunk showing the company's caller ID;
  the client's return call classifies as `callback` and reaches that holder.
- A C client presses 2 in the IVR ("call me back instead of waiting"): a request is filed.
- Closed hours and a public holiday of our own: the call takes the after-hours route (the
  "closed" recording, then voicemail or a callback request) and ends where the policy says.
"""
from __future__ import annotations

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
        legs = [c["id"] for c in await lab.channels() if c["name"].startswith("PJSIP/trunk-")]
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
