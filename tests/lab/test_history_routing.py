"""The seed's story through the real lab: history makes the next call go to the case holder.

A manager's outbound call is captured live (AMI Cdr events), so the client's return call
is a `callback` to that manager; the call after that is a `repeat` to whoever talked last.
"""
from __future__ import annotations

import pytest

from labkit import sipp
from tests.support.decisions import history_recorded, learned, wait_decision
from tests.support.phones import start_phones

pytestmark = pytest.mark.lab

CLIENT = "+79990001122"  # in no CRM and no directory: only history knows them


async def test_missed_outbound_call_makes_the_return_call_a_callback_to_that_manager(
        routing, phones, tmp_path):
    client_phone = sipp.Phone("client", tmp_path, "busy").start(*sipp.CLIENT_PHONE)
    phones["client"] = client_phone
    start_phones(phones, tmp_path, mgr2="answer", op1="answer", op2="answer")

    # mgr2 calls the client, who does not pick up (busy)
    out = await sipp.place_calls(tmp_path, ["mgr2"], service=CLIENT, from_phone="mgr2")
    assert await out.wait() == [("mgr2", "rejected_486")]
    assert client_phone.calls_from("mgr2") == ["invite", "busy"]
    await history_recorded(routing.redis_url, CLIENT)

    # the client calls back: straight to mgr2
    # (a talk of learning.min_talk_s, 10 s, or more makes mgr2 the case holder)
    back = await sipp.place_calls(tmp_path, [CLIENT], hold_ms=11_000)
    assert await back.wait() == [(CLIENT, "answered"), (CLIENT, "hung_up")]
    await sipp.wait_for_event(phones["mgr2"], CLIENT, "bye")
    [entry] = await wait_decision(routing, 1)
    assert (entry["class"], entry["callback_kind"], entry["owner"]) == ("callback", "missed", "mgr2")
    assert entry["answered_by"] == "mgr2"

    # and calls again (once the call-back's records were learned): a repeat, to the one who
    # talked with them last
    await learned(routing, CLIENT, calls=2)
    again = await sipp.place_calls(tmp_path, [CLIENT], hold_ms=500)
    assert await again.wait() == [(CLIENT, "answered"), (CLIENT, "hung_up")]
    latest = (await wait_decision(routing, 2))[0]
    assert (latest["class"], latest["answered_by"]) == ("repeat", "mgr2")
