"""The strategy mode decides who waits less, with real calls in a real queue (issue 17 item 10).

Expansion serves new callers first, retention the valuable clients the company has. Two
callers wait in the operators' queue while the only free operator is on a call of their own:
a new caller and an A client (a VIP whose manager and supervisor are both busy, so the vip
chain steps down to the queue). When the operator's call ends, Asterisk's queue offers them
the caller with the higher QUEUE_PRIO first, whoever came first: the priority Caseline gave.
"""
from __future__ import annotations

import pytest

from labkit import sipp
from tests.support.callers import UNKNOWN, VIP_A_MGR1
from tests.support.decisions import wait_decision
from tests.support.eventually import eventually
from tests.support.phones import start_phones

pytestmark = pytest.mark.lab


async def waiting_in_queue(lab, number: str) -> None:
    queued = [c for c in await lab.channels()
              if (c.get("dialplan") or {}).get("app_name") == "Queue"
              and (c.get("caller") or {}).get("number") == number]
    assert queued, f"{number} waiting in the queue"


async def answered_order(routing, phones, tmp_path, first: str, second: str) -> list[str]:
    """`first` then `second` join the queue while op1 is busy; the order op1 answers them."""
    start_phones(phones, tmp_path, op1="answer", op2="busy", mgr1="busy", sup1="busy")
    phones["client"] = client = sipp.Phone("client", tmp_path, "answer").start(*sipp.CLIENT_PHONE)
    # op1's own call to a client: Asterisk's queue (ringinuse = no) will not ring op1 meanwhile
    own = await sipp.place_calls(tmp_path, ["op1"], service="+79990001199", from_phone="op1",
                                 hold_ms=7000)
    await sipp.wait_for_event(client, "op1", "answered")
    runs = []
    for number in (first, second):
        runs.append(await sipp.place_calls(tmp_path, [number], hold_ms=1000, timeout_s=60))
        await eventually(waiting_in_queue, routing.lab, number, timeout=10)  # before the next
    for run in runs:
        assert [e for _, e in await run.wait(timeout=60)] == ["answered", "hung_up"]
    await own.wait()
    return [number for number, event in phones["op1"].events()
            if event == "answered" and number in (first, second)]


@pytest.mark.routing(strategy__mode="retention")
async def test_retention_mode_answers_the_a_client_before_a_new_caller_who_came_first(
        routing, phones, tmp_path):
    order = await answered_order(routing, phones, tmp_path, UNKNOWN, VIP_A_MGR1)
    assert order == [VIP_A_MGR1, UNKNOWN]
    entries = {e["number"][-4:]: e for e in await wait_decision(routing, 2)}
    assert int(entries[VIP_A_MGR1[-4:]]["priority"]) > int(entries[UNKNOWN[-4:]]["priority"])


@pytest.mark.routing(strategy__mode="expansion")
async def test_expansion_mode_answers_the_new_caller_before_an_a_client_who_came_first(
        routing, phones, tmp_path):
    order = await answered_order(routing, phones, tmp_path, VIP_A_MGR1, UNKNOWN)
    assert order == [UNKNOWN, VIP_A_MGR1]
    entries = {e["number"][-4:]: e for e in await wait_decision(routing, 2)}
    assert int(entries[UNKNOWN[-4:]]["priority"]) > int(entries[VIP_A_MGR1[-4:]]["priority"])
