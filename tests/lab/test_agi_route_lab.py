"""The FastAGI front with `caseline run` and real calls (issue 18): SIPp callers dial 9100
([inbound] -> [caseline-agi]), Caseline decides with the shipped config and answers with the
whole route in one variable, and dialplan/caseline-agi.conf walks it: people with their ring
times and busy / no-answer branches, the queue with QUEUE_PRIO, recordings, the IVR menu,
voicemail, callback requests. Every call must show up in the decision log, as an ARI call's
does: from its CDRs, which carry the walker's trail in the userfield.

What happened is read from the phones' SIPp logs, Asterisk's channels and CDRs, and the
decision log Caseline wrote (what `caseline calls` shows). The same paths without Asterisk:
tests/unit/test_agi_walk.py.
"""
from __future__ import annotations

import asyncio
import time
import urllib.error
from collections.abc import AsyncIterator

import pytest

from labkit import sipp
from tests.lab.test_agi_lab import (
    AGI_HOST,
    AGI_PORT,
    OPERATORS,
    cdr_userfield,
    new_number,
    operator_answer_after,
    port_in_use,
    userfields,
)
from tests.lab.test_callbacks_hours_lab import CLOSED_NOW, callbacks
from tests.support.callers import C_CLIENT, UNKNOWN, VIP_A_MGR1
from tests.support.decisions import learned, wait_decision
from tests.support.eventually import eventually
from tests.support.lab import new_cdr_rows
from tests.support.phones import answered_by, start_phones

pytestmark = pytest.mark.lab

SERVICE = "9100"  # [inbound] -> [caseline-agi]
FREEPBX = "9200"  # [inbound] -> from-trunk -> customdests -> caseline-freepbx (FreePBX recipe)


async def agi_call(tmp_path, number: str, *, service: str = SERVICE, **kwargs) -> list[tuple[str, str]]:
    run = await sipp.place_calls(tmp_path, [number], service=service, **kwargs)
    return await run.wait(timeout=90)


async def entry_of(routing, number: str, calls: int = 1) -> dict:
    """The newest decision-log entry of `number` once `calls` entries are logged."""
    entries = await wait_decision(routing, calls, timeout=20)
    return next(e for e in entries if e["number"].endswith(number[-4:]))


async def test_a_busy_manager_escalates_to_the_supervisor(routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="busy", sup1="answer", op1="answer", op2="answer")
    assert await agi_call(tmp_path, VIP_A_MGR1, hold_ms=1500) == [(VIP_A_MGR1, "answered"),
                                                                  (VIP_A_MGR1, "hung_up")]

    assert phones["mgr1"].calls_from(VIP_A_MGR1) == ["invite", "busy"]
    await sipp.wait_for_event(phones["sup1"], VIP_A_MGR1, "bye")
    assert answered_by(phones, VIP_A_MGR1) == ["sup1"]
    entry = await entry_of(routing, VIP_A_MGR1)
    assert entry["route"] == "manager:mgr1 > supervisor:sup1 > queue:operators"
    assert (entry["steps"], entry["fallbacks"]) == ("mgr1:busy > sup1:answered", "busy")
    assert entry["outcome"] == "answered" and entry["answered_by"] == "sup1"
    await cdr_userfield(routing.lab, VIP_A_MGR1, "caseline-agi:ok:0b.1a.")


@pytest.mark.routing(rules__abc__A__ring_timeout_s=3, chains__vip__escalate_ring_timeout_s=3)
async def test_nobody_answers_the_operators_queue_with_the_priority(routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="noanswer", sup1="noanswer", op1="answer:5000",
                 op2="answer:5000")
    run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=1000, service=SERVICE)

    async def queued_priority() -> str:
        waiting = [c["id"] for c in await routing.lab.channels()
                   if (c.get("dialplan") or {}).get("app_name") == "Queue"
                   and (c.get("caller") or {}).get("number") == VIP_A_MGR1]
        assert len(waiting) == 1, f"{VIP_A_MGR1} waiting in the queue"
        try:
            found = await asyncio.to_thread(routing.lab.ari, "GET",
                                            f"/channels/{waiting[0]}/variable?variable=QUEUE_PRIO")
        except urllib.error.HTTPError as e:  # it left the queue meanwhile
            raise AssertionError(f"QUEUE_PRIO: {e}") from None
        return found["value"]

    # waiting in the queue while the operators ring: with the A client's priority
    assert await eventually(queued_priority, timeout=20) == "70"
    assert [e for _, e in await run.wait(timeout=60)] == ["answered", "hung_up"]
    assert phones["mgr1"].calls_from(VIP_A_MGR1)[:1] == ["invite"]
    assert phones["sup1"].calls_from(VIP_A_MGR1)[:1] == ["invite"]
    assert len(set(answered_by(phones, VIP_A_MGR1)) & set(OPERATORS)) == 1
    entry = await entry_of(routing, VIP_A_MGR1)
    assert (entry["priority"], entry["outcome"]) == ("70", "queue")
    assert entry["steps"] == "mgr1:no_answer > sup1:no_answer > queue:operators"


async def test_a_c_clients_menu_with_digits(routing, phones, tmp_path):
    start_phones(phones, tmp_path, op1="answer", op2="answer", mgr2="answer")
    # the intro (demo-thanks) lasts 5.5 s; 9 (no option) during the menu, then 0
    events = await agi_call(tmp_path, C_CLIENT, hold_ms=1000, dtmf=("90", 7500, 6000))
    assert events == [(C_CLIENT, "answered"), (C_CLIENT, "hung_up")]

    assert len(set(answered_by(phones, C_CLIENT)) & set(OPERATORS)) == 1
    assert phones["mgr2"].events() == []
    entry = await entry_of(routing, C_CLIENT)
    # what the ARI front logs for the same presses (tests/lab/test_routing.py)
    assert entry["steps"] == ("playback:demo-thanks > ivr:main > ivr:main:invalid > ivr:main:0 > "
                              "queue:operators")


async def test_a_c_client_who_presses_1_reaches_their_manager(routing, phones, tmp_path):
    start_phones(phones, tmp_path, op1="answer", op2="answer", mgr2="answer")
    await agi_call(tmp_path, C_CLIENT, hold_ms=1000, dtmf=("1", 7500))
    await sipp.wait_for_event(phones["mgr2"], C_CLIENT, "answered")
    entry = await entry_of(routing, C_CLIENT)
    assert entry["steps"].endswith("ivr:main:1 > mgr2:answered")


async def test_a_c_client_who_presses_2_files_a_callback_request(routing, phones, tmp_path):
    start_phones(phones, tmp_path, op1="answer", op2="answer")
    events = [e for _, e in await agi_call(tmp_path, C_CLIENT, hold_ms=8000, dtmf=("2", 7500))]
    assert events[0] == "answered" and events[-1] in ("hung_up", "remote_hangup"), events

    requests = [c for c in await callbacks() if c["number"].endswith(C_CLIENT[-4:])]
    assert len(requests) == 1 and requests[0]["reason"] == "ivr:main:2 (abc.C)", requests
    entry = await entry_of(routing, C_CLIENT)
    assert entry["steps"].endswith(f"ivr:main:2 > callback:{requests[0]['id']}")


@pytest.mark.routing(hours__enabled=True, **CLOSED_NOW,
                     hours__after_hours={"action": "voicemail", "intro": "closed", "mailbox": "general"})
async def test_after_hours_the_caller_leaves_a_voicemail(routing, phones, tmp_path):
    start_phones(phones, tmp_path, op1="answer", op2="answer")
    inbox = routing.lab.root / "var/spool/asterisk/voicemail/default/1000/INBOX"
    before = set(inbox.glob("msg*.txt")) if inbox.exists() else set()
    # "nobody is available", the mailbox's greeting, then the message
    assert await agi_call(tmp_path, UNKNOWN, hold_ms=18000, speaks=True) == [(UNKNOWN, "answered"),
                                                                            (UNKNOWN, "hung_up")]

    def new_message() -> None:
        assert inbox.exists() and set(inbox.glob("msg*.txt")) - before, f"a new message in {inbox}"

    await eventually(new_message, timeout=10)
    assert not any(phone.events() for phone in phones.values())
    entry = await entry_of(routing, UNKNOWN)
    assert entry["route"] == "playback:vm-nobodyavail > voicemail:1000@default"
    assert (entry["steps"], entry["outcome"]) == ("playback:vm-nobodyavail > voicemail:1000@default",
                                                  "voicemail")


async def test_the_clients_next_call_reaches_the_person_who_answered(routing, phones, tmp_path):
    """mgr1 is busy, sup1 talks long enough to hold the case; the next call rings sup1 first."""
    number = VIP_A_MGR1
    start_phones(phones, tmp_path, mgr1="busy", sup1="answer", op1="answer", op2="answer")
    await agi_call(tmp_path, number, hold_ms=11_000)
    contact = await learned(routing, number)
    assert contact.manager == "sup1" and [t.person for t in contact.talks] == ["sup1"]

    await agi_call(tmp_path, number, hold_ms=1000)
    entry = (await wait_decision(routing, 2, timeout=20))[0]
    assert (entry["class"], entry["route"].split(" > ")[0]) == ("repeat", "supervisor:sup1")
    assert entry["steps"] == "sup1:answered"
    assert phones["sup1"].calls_from(number).count("invite") == 2


async def test_every_agi_call_is_in_the_decision_log_under_its_channel(routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="answer", op1="answer", op2="answer")
    first, second = new_number(), VIP_A_MGR1
    known = {number: len(routing.lab.cdr_rows(number)) for number in (first, second)}
    await agi_call(tmp_path, first, hold_ms=800)
    await agi_call(tmp_path, second, hold_ms=800)

    entries = {e["call_id"]: e for e in await wait_decision(routing, 2, timeout=20)}
    for number, outcome in ((first, "queue"), (second, "answered")):
        # the caller's channel (party A of the call's records) is the decision's call id
        [call_id] = {row[16] for row in await new_cdr_rows(routing.lab, number, known[number])}
        assert entries[call_id]["outcome"] == outcome and entries[call_id]["reasons"]
        assert entries[call_id]["profile"]  # `caseline replay` can re-decide it


async def test_the_freepbx_recipe_in_a_freepbx_like_layout(routing, phones, tmp_path):
    """from-trunk -> the Custom Destination -> Caseline's route -> FreePBX's ext-queues."""
    start_phones(phones, tmp_path, mgr1="busy", sup1="busy", op1="answer", op2="answer")
    assert await agi_call(tmp_path, VIP_A_MGR1, service=FREEPBX, hold_ms=1500) == [
        (VIP_A_MGR1, "answered"), (VIP_A_MGR1, "hung_up")]

    assert phones["mgr1"].calls_from(VIP_A_MGR1) == ["invite", "busy"]
    assert phones["sup1"].calls_from(VIP_A_MGR1) == ["invite", "busy"]
    assert len(set(answered_by(phones, VIP_A_MGR1)) & set(OPERATORS)) == 1

    def queued_by_freepbx() -> None:
        rows = routing.lab.cdr_rows(VIP_A_MGR1)
        # ext-queues runs Queue(<queue>,t,,,600); the plain [operators] Queue(<queue>,,,,600)
        assert any(row[7] == "Queue" and row[8].startswith("operators,t,") for row in rows), rows
        assert "caseline-agi:ok:0b.1b.2q." in userfields(routing.lab, VIP_A_MGR1)

    await eventually(queued_by_freepbx)
    entry = await entry_of(routing, VIP_A_MGR1)
    assert entry["steps"] == "mgr1:busy > sup1:busy > queue:operators"


# -- Caseline stalled: no `caseline run` here, a socket that never answers ---------------------


@pytest.fixture
async def stalled(asterisk) -> AsyncIterator[list[bytes]]:
    """127.0.0.1:4573 accepts FastAGI sessions and never answers; yields what it received."""
    if port_in_use():
        pytest.fail(f"{AGI_HOST}:{AGI_PORT} is taken: stop whatever serves FastAGI there", pytrace=False)
    received: list[bytes] = []
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while line := await reader.readline():
            received.append(line)

    server = await asyncio.start_server(hold, AGI_HOST, AGI_PORT)
    yield received
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_stalled_caseline_puts_the_call_in_the_operators_queue_within_the_deadline(
        asterisk, stalled, phones, tmp_path):
    start_phones(phones, tmp_path, op1="answer", op2="answer")
    number = new_number()
    started = time.monotonic()
    run = await sipp.place_calls(tmp_path, [number], hold_ms=2000, service=SERVICE)
    elapsed = await operator_answer_after(phones, number, started)
    assert [e for _, e in await run.wait(timeout=30)] == ["answered", "hung_up"]

    # CASELINE_AGI_DEADLINE (3 s) and the queue; res_agi alone would wait forever
    assert 3 <= elapsed < 7, f"operators answered after {elapsed:.1f} s"

    def given_up() -> None:  # res_agi told the server it left (AGISIGHUP)
        assert b"agi_network_script: route\n" in stalled and b"HANGUP\n" in stalled, stalled

    await eventually(given_up)
    await cdr_userfield(asterisk, number, "caseline-agi:agi_timeout:o.")
