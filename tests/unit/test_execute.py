"""The executor on the in-memory ARI: ringing people, their answers, bridges, queue and IVR.

Each call is routed end to end (StasisApp -> CallRouting -> Router over the shipped
routing.yaml -> Executor); the phones are scripted as Asterisk reports them.
"""
from __future__ import annotations

import pytest
from redis.asyncio import Redis

from ari_app.ari.fake import FakeAri
from ari_app.core.dialplan import OPERATORS_CONTEXT, VOICEMAIL_CONTEXT
from ari_app.core.models import DialResult, OutcomeResult
from ari_app.stasis import execute
from ari_app.stasis.presence import RedisPresence
from tests.support.fake_world import (
    A_CLIENT,
    B_CLIENT,
    C_CLIENT,
    NEW_CALLER,
    MemoryPresence,
    policy_with,
    running,
)

# The A client's chain, split so that each way of missing mgr1 leads somewhere else:
# busy -> the supervisor, no answer or unavailable -> the operators.
SPLIT = policy_with(chains__vip__on_no_answer="step_down", chains__vip__on_unavailable="step_down")


def dialled(fake: FakeAri) -> list[str]:
    return [r["endpoint"] for r in fake.sent("create_channel")]


async def test_a_manager_on_a_call_is_busy_and_the_supervisor_is_rung() -> None:
    async with running(policy=SPLIT) as world:
        fake = world.ari
        fake.phone("PJSIP/mgr1").on_a_call()  # Asterisk's endpoint view: a channel on it
        fake.phone("PJSIP/sup1").answers()
        call_id = fake.caller_arrives(A_CLIENT)
        fake.hang_up(await world.talking(call_id))
        outcome = await world.outcome(call_id)

    assert dialled(fake) == ["PJSIP/sup1"]  # mgr1's phone never rang
    assert outcome.steps == ["mgr1:busy", "sup1:answered"]
    assert outcome.fallbacks == [DialResult.BUSY] and outcome.answered_by == "sup1"


async def test_a_manager_claimed_by_another_call_is_busy(redis: Redis) -> None:
    presence = RedisPresence(redis)
    assert await presence.claim("mgr1", "a-call-of-another-instance", 60)
    async with running(policy=SPLIT, presence=presence) as world:
        fake = world.ari
        fake.phone("PJSIP/mgr1").answers()
        fake.phone("PJSIP/sup1").answers()
        call_id = fake.caller_arrives(A_CLIENT)
        fake.hang_up(await world.talking(call_id))
        outcome = await world.outcome(call_id)

    assert dialled(fake) == ["PJSIP/sup1"]
    assert outcome.steps == ["mgr1:busy", "sup1:answered"]
    assert await redis.get("caseline:busy:mgr1") == b"a-call-of-another-instance"  # not ours
    assert await redis.get("caseline:busy:sup1") is None  # ours, released


async def test_no_answer_steps_down_to_the_queue() -> None:
    async with running(policy=SPLIT) as world:
        fake = world.ari
        fake.phone("PJSIP/mgr1").no_answer()
        _, outcome = await world.call(A_CLIENT)

    [dial] = fake.sent("dial")
    assert dial["timeout_s"] == 30  # rules.abc.A.ring_timeout_s
    assert fake.destroyed[dial["channel_id"]] == 19  # Asterisk's dial timeout ended the leg
    assert outcome.steps == ["mgr1:no_answer", "queue:operators"]
    assert outcome.fallbacks == [DialResult.NO_ANSWER] and outcome.result is OutcomeResult.QUEUE


async def test_an_unavailable_manager_is_skipped() -> None:
    async with running(policy=SPLIT) as world:
        fake = world.ari
        fake.phone("PJSIP/mgr1").unavailable()  # SIP 503: cause 34
        _, outcome = await world.call(A_CLIENT)

    assert outcome.steps == ["mgr1:unavailable", "queue:operators"]
    assert outcome.fallbacks == [DialResult.UNAVAILABLE]


async def test_the_caller_hanging_up_while_a_person_rings_stops_the_ringing() -> None:
    presence = MemoryPresence()
    async with running(presence=presence) as world:
        fake = world.ari
        fake.phone("PJSIP/mgr1").keeps_ringing()
        call_id = fake.caller_arrives(A_CLIENT)
        leg = await fake.ringing("PJSIP/mgr1")
        assert presence.claims == {"mgr1": call_id}
        fake.hang_up(call_id)
        outcome = await world.outcome(call_id)

    assert outcome.result is OutcomeResult.CALLER_HUNG_UP
    assert outcome.steps == ["mgr1:caller_hung_up"]  # the decision log names who was rung
    assert {"channel_id": leg, "reason": "normal"} in fake.sent("hangup")
    assert leg not in fake.live_channels and presence.claims == {}
    assert dialled(fake) == ["PJSIP/mgr1"]  # nobody else is rung for a caller who left


@pytest.mark.parametrize("failure", ["vanishes", "rejects_create"])
async def test_a_leg_that_fails_before_stasis_is_unavailable_and_the_route_goes_on(
        failure: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Caseline's own wait for the leg's StasisStart (5 s), shortened: the leg never comes
    monkeypatch.setattr(execute, "LEG_START_TIMEOUT_S", 0.05)
    async with running() as world:
        fake = world.ari
        getattr(fake.phone("PJSIP/mgr1"), failure)()
        fake.phone("PJSIP/sup1").answers()
        call_id = fake.caller_arrives(A_CLIENT)
        sup1_leg = await world.talking(call_id)
        fake.hang_up(sup1_leg)
        outcome = await world.outcome(call_id)

    assert outcome.steps == ["mgr1:unavailable", "sup1:answered"]
    assert [d["channel_id"] for d in fake.sent("dial")] == [sup1_leg]  # mgr1's leg never was


async def test_an_unregistered_manager_is_unavailable_and_the_route_goes_on() -> None:
    async with running() as world:
        fake = world.ari
        fake.phone("PJSIP/mgr1").unregistered()  # no contact: ast_request fails
        fake.phone("PJSIP/sup1").busy()
        call_id, outcome = await world.call(A_CLIENT)

    assert outcome.steps == ["mgr1:unavailable", "sup1:busy", "queue:operators"]
    assert fake.live_channels[call_id].variables["CASELINE_PRIORITY"] == "70"


async def test_an_answered_call_is_bridged_and_taken_apart_when_the_person_hangs_up() -> None:
    presence = MemoryPresence()
    async with running(presence=presence) as world:
        fake = world.ari
        fake.phone("PJSIP/mgr1").answers(after=5)
        call_id = fake.caller_arrives(A_CLIENT)
        leg = await world.talking(call_id)
        [bridge] = fake.live_bridges.values()
        assert bridge.channels == [call_id, leg]
        assert fake.live_channels[call_id].state == "Up"  # answered before the bridge
        fake.hang_up(leg)  # the manager hangs up
        outcome = await world.outcome(call_id)

    assert outcome.result is OutcomeResult.ANSWERED and outcome.answered_by == "mgr1"
    assert fake.live_bridges == {} and fake.sent("destroy_bridge") == [{"bridge_id": bridge.id}]
    assert fake.sent("hangup") == [{"channel_id": call_id, "reason": "normal"}]  # not the gone leg
    assert call_id not in fake.live_channels and presence.claims == {}


async def test_the_caller_hanging_up_mid_talk_ends_the_persons_leg() -> None:
    async with running() as world:
        fake = world.ari
        fake.phone("PJSIP/mgr1").answers()
        call_id = fake.caller_arrives(A_CLIENT)
        leg = await world.talking(call_id)
        fake.hang_up(call_id)
        outcome = await world.outcome(call_id)

    assert outcome.result is OutcomeResult.ANSWERED
    assert fake.sent("hangup") == [{"channel_id": leg, "reason": "normal"}]
    assert fake.live_channels == {} and fake.live_bridges == {}


async def test_a_caller_who_leaves_as_the_person_answers_still_counts_as_answered_by_them() -> None:
    """The person's phone answered; the caller hangs up while we bridge (Asterisk has just
    answered them): the outcome is the person's answer with a talk of 0 s, not a caller
    hanging up with no one. Before, the step was lost (CI of 2026-12-08: "mgr1:busy" alone)."""
    async with running() as world:
        fake = world.ari
        fake.phone("PJSIP/mgr1").answers()
        answer = fake.answer

        async def answer_then_the_caller_leaves(channel_id: str) -> None:
            await answer(channel_id)
            if channel_id == call_id:
                fake.hang_up(channel_id)

        fake.answer = answer_then_the_caller_leaves  # type: ignore[method-assign]
        call_id = fake.caller_arrives(A_CLIENT)
        outcome = await world.outcome(call_id)

    assert (outcome.result, outcome.answered_by, outcome.steps) == (OutcomeResult.ANSWERED, "mgr1", ["mgr1:answered"])
    assert fake.live_channels == {} and fake.live_bridges == {}  # the person's leg is hung up


async def test_the_queue_gets_the_caller_with_priority_and_queue_name() -> None:
    async with running() as world:
        fake = world.ari
        call_id, outcome = await world.call(NEW_CALLER)

    channel = fake.live_channels[call_id]  # still alive: in the dialplan's queue now
    assert channel.variables == {"CASELINE_PRIORITY": "20", "CASELINE_QUEUE": "operators"}
    assert fake.sent("continue_in_dialplan") == [
        {"channel_id": call_id, "context": OPERATORS_CONTEXT, "extension": "s", "priority": 1}]
    assert not channel.in_app and outcome.result is OutcomeResult.QUEUE


async def test_a_missed_manager_hands_the_call_to_the_queue_with_its_priority() -> None:
    async with running() as world:
        fake = world.ari
        fake.phone("PJSIP/mgr2").busy()
        call_id, outcome = await world.call(B_CLIENT)

    assert outcome.steps == ["mgr2:busy", "queue:operators"]
    assert fake.live_channels[call_id].variables["CASELINE_PRIORITY"] == "50"  # strategy B


async def test_an_ivr_digit_picks_its_option() -> None:
    async with running() as world:
        fake = world.ari
        call_id = fake.caller_arrives(C_CLIENT)
        fake.presses_during(call_id, "demo-instruct", "0")
        outcome = await world.outcome(call_id)

    assert outcome.steps == ["playback:demo-thanks", "ivr:main", "ivr:main:0", "queue:operators"]
    assert len(fake.sent("stop_playback")) == 1  # the digit cut the prompt short
    assert fake.live_channels[call_id].context == OPERATORS_CONTEXT


async def test_an_invalid_choice_is_said_and_the_menu_asked_again() -> None:
    async with running() as world:
        fake = world.ari
        call_id = fake.caller_arrives(C_CLIENT)
        fake.presses_during(call_id, "demo-instruct", "9", "0")
        outcome = await world.outcome(call_id)

    assert outcome.steps == ["playback:demo-thanks", "ivr:main", "ivr:main:invalid",
                             "ivr:main:0", "queue:operators"]
    assert [p["media"] for p in fake.sent("play")] == [
        "sound:demo-thanks", "sound:demo-instruct", "sound:pbx-invalid", "sound:demo-instruct"]


async def test_no_choice_plays_the_menu_retries_times_then_takes_the_timeout_target() -> None:
    async with running() as world:
        fake = world.ari
        menu = world.policy.ivr["main"]
        # Caseline's own wait for a digit, not Asterisk's: shortened (unvalidated copy)
        world.use_policy(world.policy.model_copy(update={
            "ivr": {"main": menu.model_copy(update={"timeout_s": 0.01})}}))
        call_id, outcome = await world.call(C_CLIENT)

    assert outcome.steps == ["playback:demo-thanks", "ivr:main", "ivr:main:timeout",
                             "voicemail:1000@default"]
    prompts = [p for p in fake.sent("play") if p["media"] == "sound:demo-instruct"]
    assert len(prompts) == menu.retries + 1
    channel = fake.live_channels[call_id]
    assert channel.variables == {"CASELINE_MAILBOX": "1000@default"}
    assert channel.context == VOICEMAIL_CONTEXT and outcome.result is OutcomeResult.VOICEMAIL


@pytest.mark.parametrize("event_before_answer", [False, True], ids=["link-up-first", "event-first"])
async def test_an_attended_transfer_names_the_consulted_person_whatever_the_event_order(
        event_before_answer: bool) -> None:
    """Asterisk links the bridges with a Local channel named `_attended@transfer`: the person
    the caller talks with is the transfer event's `transfer_target`, never that channel."""
    async with running() as world:
        fake = world.ari
        fake.phone("PJSIP/mgr1").answers()
        call_id = fake.caller_arrives(A_CLIENT)
        leg = await world.talking(call_id)
        link = fake.attended_transfer(leg, "PJSIP/mgr3", event_before_answer=event_before_answer)
        await fake.until(lambda: leg in fake.destroyed)
        assert call_id not in fake.destroyed  # the client stays, now with mgr3
        fake.hang_up(link)
        outcome = await world.outcome(call_id)

    assert outcome.steps == ["mgr1:answered", "transfer:mgr3"]
    assert outcome.result is OutcomeResult.ANSWERED and outcome.answered_by == "mgr3"
