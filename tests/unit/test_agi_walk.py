"""The whole FastAGI path without Asterisk: the real router, policy and server answer AGI(route)
with one variable; the shipped dialplan/caseline-agi.conf walks it in the dialplan interpreter
(tests/support/dialplan_sim.py); the trail it leaves in the CDR's userfield becomes the
decision log's outcome. Each case names what the ARI front does with the same caller
(ari_app/stasis/execute.py, the reference); the lab runs the same with real calls
(tests/lab/test_agi_route_lab.py)."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from ari_app.core.models import OutcomeResult
from tests.support.agi_walk import walking
from tests.support.dialplan_sim import HANGUP
from tests.support.fake_world import A_CLIENT, B_CLIENT, C_CLIENT, NEW_CALLER, policy_with

# NOW (tests/support/fake_world.py) is Wednesday 11:00 in Moscow: opening at noon closes us
CLOSED_VOICEMAIL = policy_with(hours__wed=["12:00-19:00"])
CLOSED_CALLBACK = policy_with(hours__wed=["12:00-19:00"], hours__after_hours__action="callback_request")


def dialled(call) -> list[tuple[str, str]]:
    return [(e[1], e[2]) for e in call.events if e[0] == "dial"]


def queued(call) -> list[tuple[str, str]]:
    return [(e[1], e[2]) for e in call.events if e[0] == "queue"]


def played(call) -> list[str]:
    return [e[1] for e in call.events if e[0] == "playback"]


# -- people: ring time, busy / no answer / unavailable, escalation ---------------------------


async def test_a_busy_manager_escalates_to_the_supervisor_and_the_log_says_so(redis: Redis) -> None:
    async with walking(redis) as walk:
        call = await walk.call(A_CLIENT, phones={"PJSIP/mgr1": "busy", "PJSIP/sup1": "answer"})
        await walk.cdrs_arrive(call, talk_s=42)
        [entry] = await walk.logged()

    # the A rule: mgr1 30 s, the vip chain: sup1 20 s, then the operators
    assert dialled(call) == [("PJSIP/mgr1", "30"), ("PJSIP/sup1", "20")]
    assert call.userfield == "caseline-agi:ok:0b.1a."
    assert (entry["call_id"], entry["service"], entry["priority"]) == (call.uniqueid, "manager", "70")
    assert entry["route"] == "manager:mgr1 > supervisor:sup1 > queue:operators"
    assert (entry["steps"], entry["fallbacks"]) == ("mgr1:busy > sup1:answered", "busy")
    assert (entry["outcome"], entry["answered_by"], entry["talk_s"]) == ("answered", "sup1", "42")
    assert entry["reasons"] and entry["profile"]  # what `replay` re-decides from


async def test_nobody_answers_the_operators_queue_with_the_priority() -> None:
    async with walking() as walk:
        call = await walk.call(A_CLIENT, phones={"PJSIP/mgr1": "noanswer", "PJSIP/sup1": "unavailable"})
    assert dialled(call) == [("PJSIP/mgr1", "30"), ("PJSIP/sup1", "20")]
    assert queued(call) == [("operators", "70")]
    assert call.userfield == "caseline-agi:ok:0n.1u.2q."


async def test_a_manager_already_on_a_call_is_not_rung() -> None:
    async with walking() as walk:
        call = await walk.call(A_CLIENT, phones={"PJSIP/sup1": "answer"},
                               device_states={"PJSIP/mgr1": "INUSE"})
    assert dialled(call) == [("PJSIP/sup1", "20")]
    assert call.userfield == "caseline-agi:ok:0b.1a."


async def test_a_b_client_whose_manager_is_unreachable_steps_down_to_the_operators() -> None:
    async with walking() as walk:
        call = await walk.call(B_CLIENT, phones={"PJSIP/mgr2": "unavailable"})
    assert dialled(call) == [("PJSIP/mgr2", "25")]  # defaults.ring_timeout_s
    assert queued(call) == [("operators", "50")]


async def test_music_on_hold_while_a_person_rings_when_the_policy_says_so() -> None:
    async with walking(policy=policy_with(defaults__ringback="moh")) as walk:
        call = await walk.call(B_CLIENT, phones={"PJSIP/mgr2": "answer"})
    assert [e for e in call.events if e[0] == "dial"] == [("dial", "PJSIP/mgr2", "25", "m(default)")]


async def test_a_new_caller_goes_to_the_operators(redis: Redis) -> None:
    async with walking(redis) as walk:
        call = await walk.call(NEW_CALLER)
        await walk.cdrs_arrive(call)
        [entry] = await walk.logged()
    assert dialled(call) == [] and queued(call) == [("operators", "20")]
    assert (entry["outcome"], entry["steps"]) == ("queue", "queue:operators")


async def test_the_caller_hanging_up_while_the_manager_rings(redis: Redis) -> None:
    async with walking(redis) as walk:
        call = await walk.call(A_CLIENT, phones={"PJSIP/mgr1": "caller_leaves"})
        await walk.cdrs_arrive(call)
        [entry] = await walk.logged()
    assert dialled(call) == [("PJSIP/mgr1", "30")]
    assert call.userfield == "caseline-agi:ok:0h."
    assert (entry["outcome"], entry["steps"]) == ("caller_hung_up", "mgr1:caller_hung_up")


async def test_answered_and_the_caller_ends_the_talk(redis: Redis) -> None:
    """Dial never returns to the walker: its hangup handler finishes the step from DIALSTATUS."""
    async with walking(redis) as walk:
        call = await walk.call(A_CLIENT, phones={"PJSIP/mgr1": "answer_caller_leaves"})
        await walk.cdrs_arrive(call, talk_s=61)
        [entry] = await walk.logged()
    assert call.userfield == "caseline-agi:ok:0a."
    assert (entry["outcome"], entry["answered_by"], entry["talk_s"]) == ("answered", "mgr1", "61")


# -- the IVR menu of routing.yaml --------------------------------------------------------------


async def test_a_c_client_hears_the_recording_then_the_menu_and_presses_0(redis: Redis) -> None:
    async with walking(redis) as walk:
        call = await walk.call(C_CLIENT, presses=["0"])
        await walk.cdrs_arrive(call)
        [entry] = await walk.logged()
    assert played(call) == ["demo-thanks"]
    # the prompt, one digit (the longest option), no terminator (# may be an option), 5 s
    assert [e for e in call.events if e[0] == "read"] == [("read", "demo-instruct", "1", "t", "5")]
    assert queued(call) == [("operators", "10")]
    # exactly what the ARI front logs for the same call (tests/lab/test_routing.py)
    assert entry["steps"] == "playback:demo-thanks > ivr:main > ivr:main:0 > queue:operators"


async def test_an_invalid_choice_is_said_and_the_menu_asked_again(redis: Redis) -> None:
    async with walking(redis) as walk:
        call = await walk.call(C_CLIENT, presses=["9", "0"])
        await walk.cdrs_arrive(call)
        [entry] = await walk.logged()
    assert played(call) == ["demo-thanks", "pbx-invalid"]
    assert entry["steps"] == ("playback:demo-thanks > ivr:main > ivr:main:invalid > ivr:main:0 > "
                              "queue:operators")


async def test_no_choice_after_the_retries_takes_the_menus_timeout_voicemail(redis: Redis) -> None:
    async with walking(redis) as walk:
        call = await walk.call(C_CLIENT, presses=[None, None, None])
        await walk.cdrs_arrive(call)
        [entry] = await walk.logged()
    assert len([e for e in call.events if e[0] == "read"]) == 3  # retries 2: three prompts
    assert [e for e in call.events if e[0] == "voicemail"] == [("voicemail", "1000@default", "u")]
    assert entry["steps"] == "playback:demo-thanks > ivr:main > ivr:main:timeout > voicemail:1000@default"
    assert entry["outcome"] == "voicemail"


async def test_an_option_to_the_case_holder_rings_them_with_the_clients_chain() -> None:
    async with walking() as walk:
        call = await walk.call(C_CLIENT, presses=["1"], phones={"PJSIP/mgr2": "busy"})
    assert dialled(call) == [("PJSIP/mgr2", "25")]  # holder, then the standard chain
    assert queued(call) == [("operators", "10")]


async def test_a_nested_menu_and_multi_digit_options() -> None:
    ivr = {"main": {"prompt": "demo-instruct", "options": {"1": "ivr:sales", "#": "queue:operators"},
                    "on_timeout": "hangup"},
           "sales": {"prompt": "custom/sales", "timeout_s": 7, "retries": 0,
                     "options": {"12": "manager:mgr3", "*": "ivr:main"}, "on_timeout": "hangup"}}
    async with walking(policy=policy_with(ivr=ivr)) as walk:
        deeper = await walk.call(C_CLIENT, presses=["1", "12"], phones={"PJSIP/mgr3": "answer"})
        hash_key = await walk.call(C_CLIENT, presses=["#"])
        loop = await walk.call(C_CLIENT, presses=["1", "*", "1"])
    assert [e[1:] for e in deeper.events if e[0] == "read"] == [
        ("demo-instruct", "1", "t", "5"), ("custom/sales", "2", "t", "7")]
    assert dialled(deeper) == [("PJSIP/mgr3", "25")]
    assert queued(hash_key) == [("operators", "10")]
    # main > sales > main > sales: the fourth menu is one too deep (MAX_IVR_DEPTH), operators
    assert [e[1] for e in loop.events if e[0] == "read"] == ["demo-instruct", "custom/sales", "demo-instruct"]
    assert queued(loop) == [("operators", "10")]


async def test_the_caller_hanging_up_in_the_menu(redis: Redis) -> None:
    async with walking(redis) as walk:
        call = await walk.call(C_CLIENT, presses=[HANGUP])
        await walk.cdrs_arrive(call)
        [entry] = await walk.logged()
    assert call.userfield == "caseline-agi:ok:0p.1h."
    assert (entry["outcome"], entry["steps"]) == ("caller_hung_up", "playback:demo-thanks > ivr:main")


# -- callback requests, after hours ----------------------------------------------------------


async def test_pressing_2_files_a_callback_request_with_the_choice_and_the_turn(redis: Redis) -> None:
    async with walking(redis) as walk:
        call = await walk.call(C_CLIENT, presses=["2"])
        await walk.cdrs_arrive(call)
        [entry] = await walk.logged()
        [req] = await walk.store.listing()
    # AGI(callback) gets what the caller did so far, files, and says which request
    [(_, url, trail)] = [e for e in call.events if e[0] == "agi" and e[1].endswith("/callback")]
    assert trail == "0p.1=2."
    assert call.vars["CASELINE_FILED"] == req.id
    assert (req.number, req.holder, req.priority, req.call_id) == (C_CLIENT, "mgr2", 10, call.uniqueid)
    assert req.reason == "ivr:main:2 (abc.C)"  # as the ARI front words it
    assert played(call)[-1] == "queue-thankyou" and call.events[-1] == ("hangup",)
    assert entry["steps"].endswith(f"ivr:main:2 > callback:{req.id}") and entry["outcome"] == "callback"


async def test_a_callback_that_cannot_be_filed_goes_to_the_operators(redis: Redis) -> None:
    async with walking(redis, callbacks=False) as walk:
        call = await walk.call(C_CLIENT, presses=["2"])
        await walk.cdrs_arrive(call)
        [entry] = await walk.logged()
    assert queued(call) == [("operators", "10")]
    assert entry["steps"].endswith("ivr:main:2 > callback:not_filed > queue:operators")


async def test_after_hours_the_closed_recording_then_voicemail() -> None:
    async with walking(policy=CLOSED_VOICEMAIL) as walk:
        call = await walk.call(A_CLIENT)
    assert played(call) == ["vm-nobodyavail"]
    assert [e for e in call.events if e[0] == "voicemail"] == [("voicemail", "1000@default", "u")]
    assert dialled(call) == [] and queued(call) == []


async def test_after_hours_callback_request_is_filed_when_the_step_is_reached(redis: Redis) -> None:
    async with walking(redis, policy=CLOSED_CALLBACK) as walk:
        call = await walk.call(A_CLIENT)
        [req] = await walk.store.listing()
    assert played(call) == ["vm-nobodyavail"]
    assert (req.holder, req.reason, req.priority) == ("mgr1", "hours.after_hours", 70)
    assert call.userfield == "caseline-agi:ok:0p.1c."


async def test_a_caller_who_leaves_during_the_intro_files_nothing(redis: Redis) -> None:
    async with walking(redis, policy=CLOSED_CALLBACK) as walk:
        call = await walk.call(A_CLIENT, hangup_on_sound="vm-nobodyavail")
        assert await walk.store.listing() == []
    assert call.userfield == "caseline-agi:ok:0h."


# -- Caseline away, slow, stalled, shedding ---------------------------------------------------


@pytest.fixture
async def stalled() -> AsyncIterator[int]:
    """A FastAGI port that accepts, reads the environment, and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # until the peer closes

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_a_stalled_caseline_puts_the_call_in_the_operators_queue_within_the_deadline(
        stalled: int) -> None:
    async with walking() as walk:
        loop = asyncio.get_running_loop()
        started = loop.time()
        call = await walk.call(A_CLIENT, globals={"CASELINE_AGI_URL": f"agi://127.0.0.1:{stalled}",
                                                  "CASELINE_AGI_DEADLINE": "0.3"})
        elapsed = loop.time() - started
    assert queued(call) == [("operators", "0")]
    assert call.userfield == "caseline-agi:agi_timeout:o."
    assert 0.3 <= elapsed < 2  # the deadline, not res_agi's endless wait


async def test_caseline_not_listening_puts_the_call_in_the_operators_queue_at_once() -> None:
    async with walking() as walk:
        port = walk.server.port
    call = await walk.call(A_CLIENT, globals={"CASELINE_AGI_URL": f"agi://127.0.0.1:{port}"})
    assert queued(call) == [("operators", "0")]
    assert call.userfield == "caseline-agi:agi_failed:o."


async def test_no_decision_in_time_is_the_operators_at_normal_priority() -> None:
    async def never(raw: str | None, call_id: str):
        await asyncio.Event().wait()  # only the server's route_timeout ends this

    async with walking(route=never, route_timeout=0.05) as walk:
        call = await walk.call(A_CLIENT)
    assert queued(call) == [("operators", "0")]
    assert call.userfield == "caseline-agi:fallback:0q."


async def test_a_shed_session_is_queued_at_the_priority_caseline_gave() -> None:
    from ari_app.core.admission import ShedTarget

    async with walking(shed=lambda raw: ShedTarget(33, "operators")) as walk:
        call = await walk.call(A_CLIENT)
    assert queued(call) == [("operators", "33")]
    assert call.userfield == "caseline-agi:shed:0q."


async def test_the_admission_gate_skips_agi_entirely() -> None:
    async with walking() as walk:
        call = await walk.call(A_CLIENT, globals={"CASELINE_ADMISSION": "shed",
                                                  "CASELINE_SHED_PRIORITY": "20"})
    assert [e for e in call.events if e[0] == "agi"] == []
    assert queued(call) == [("operators", "20")]
    assert call.userfield == "caseline:shed"  # what admission counts (main.count_gate_shed)


# -- whatever the variable holds, nothing runs but the route --------------------------------


@pytest.mark.parametrize("route", [
    "ok:5::1|m:PJSIP/mgr1,,U(evil):20:1:1:1|q:operators",  # a dial string with options
    "ok:5::1|m:Local/x@y:20:1:1:1|q:operators",
    "ok:5::1|q:${SHELL(id)}",
    "ok:5::1|q:ops&x",
    "ok:5::1|v:1000@def ault",
    "ok:5::1|i:demo:pbx-invalid:5:1:1:1=$[1]:0",
    "ok:5::1|p:../../etc/passwd|q:operators",
    "ok:5;1|q:operators",
    "ok:5::1|m:PJSIP/mgr1:20:0:0:0",  # pointing back at itself: the hop bound
    "",
])
async def test_a_broken_or_hostile_route_never_reaches_anything_but_the_operators(route: str) -> None:
    """A route the server would never send (its values are whitelisted), set by hand."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()).strip():
            pass  # the environment
        writer.write(f'SET VARIABLE CASELINE_ROUTE "{route}"\n'.encode())
        await reader.readline()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        async with walking() as walk:
            call = await walk.call(A_CLIENT, phones={"PJSIP/mgr1": "busy"}, globals={
                "CASELINE_AGI_URL": f"agi://127.0.0.1:{server.sockets[0].getsockname()[1]}"})
    finally:
        server.close()
    assert all(endpoint == "PJSIP/mgr1" for endpoint, _ in dialled(call))
    assert [e[0] for e in call.events if e[0] in ("playback", "voicemail", "read")] == []
    assert [name for name, _ in queued(call)] == ["operators"]
    assert call.userfield.startswith("caseline-agi:") and call.userfield.endswith(("o.", "q."))


async def test_every_decision_reaches_the_log_even_without_its_cdrs(redis: Redis) -> None:
    async with walking(redis) as walk:
        await walk.call(B_CLIENT, phones={"PJSIP/mgr2": "answer"})
        await walk.calls.close()  # shutting down: the call's CDRs never came
        [entry] = await walk.logged()
    assert entry["outcome"] == OutcomeResult.UNKNOWN and entry["route"].startswith("manager:mgr2")
