"""What the outcome recorder remembers, on a real Redis: history for the next call's routing,
and the capped decision log that `caseline calls` reads."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from ari_app.config.history_settings import HistorySettings
from ari_app.core.decide import decide
from ari_app.core.identify import identify
from ari_app.core.models import (
    CallerProfile,
    Contact,
    CrmFacts,
    DialResult,
    Direction,
    EnvironmentFacts,
    HistoryClass,
    Outcome,
    OutcomeResult,
    SourceStatus,
)
from ari_app.history.store import RedisHistoryStore
from ari_app.record.outcomes import OutcomeRecorder, last_decisions
from ari_app.record.pending_writes import PendingWrites
from tests.support.fake_world import A_CLIENT, CLIENTS, NOW, policy_with, running

WINDOWS = HistorySettings().windows()
POLICY = policy_with()  # the shipped one
A_PROFILE = CallerProfile(A_CLIENT, crm=CrmFacts(SourceStatus.OK, CLIENTS[A_CLIENT]))


def recorder_on(redis: Redis) -> tuple[OutcomeRecorder, RedisHistoryStore]:
    history = RedisHistoryStore(redis, retention=WINDOWS.old)
    return OutcomeRecorder(redis, history, max_entries=100, pending=PendingWrites()), history


async def record(recorder: OutcomeRecorder, profile: CallerProfile, outcome: Outcome) -> datetime:
    started = datetime.now(UTC)  # history keeps contacts by the real clock's retention
    await recorder.record("call-1", started, profile, decide(profile, POLICY, NOW), outcome, 1.5)
    return started


async def contacts(history: RedisHistoryStore, number: str) -> list[Contact]:
    return await history.recent(number, datetime.now(UTC) - timedelta(days=1))


async def test_who_answered_becomes_the_case_holder(redis: Redis) -> None:
    recorder, history = recorder_on(redis)
    async with running(recorder=recorder) as world:  # a call routed end to end, then recorded
        fake = world.ari
        fake.phone("PJSIP/mgr1").answers()
        call_id = fake.caller_arrives(A_CLIENT)
        fake.hang_up(await world.talking(call_id))
        await world.outcome(call_id)

    [contact] = await contacts(history, A_CLIENT)
    assert contact.direction is Direction.INBOUND
    assert (contact.answered, contact.manager) == (True, "mgr1")
    # the next call of this number, even with the CRM silent, goes to whoever answered
    profile = identify(A_CLIENT, [contact], CrmFacts(), EnvironmentFacts(), contact.at, WINDOWS)
    assert profile.case_holder == "mgr1"


async def test_a_caller_who_hung_up_is_recorded_as_missed(redis: Redis) -> None:
    recorder, history = recorder_on(redis)
    await record(recorder, A_PROFILE,
                 Outcome(OutcomeResult.CALLER_HUNG_UP, steps=["mgr1:no_answer"]))

    [contact] = await contacts(history, A_CLIENT)
    assert (contact.answered, contact.manager) == (False, None)
    profile = identify(A_CLIENT, [contact], CrmFacts(), EnvironmentFacts(), contact.at, WINDOWS)
    assert profile.history.cls is HistoryClass.REPEAT and profile.history.previous_missed


async def test_the_decision_log_keeps_masked_number_route_steps_and_fallbacks(redis: Redis) -> None:
    recorder, _ = recorder_on(redis)
    await record(recorder, A_PROFILE, Outcome(
        OutcomeResult.ANSWERED, answered_by="sup1", talk_s=42,
        steps=["mgr1:busy", "sup1:answered"], fallbacks=[DialResult.BUSY]))

    [entry] = await last_decisions(redis, 5)
    assert entry["number"] == "***4567" and A_CLIENT not in str(entry)
    assert entry["route"] == "manager:mgr1 > supervisor:sup1 > queue:operators"
    assert (entry["service"], entry["priority"]) == ("manager", "70")
    assert entry["steps"] == "mgr1:busy > sup1:answered" and entry["fallbacks"] == "busy"
    assert (entry["outcome"], entry["answered_by"], entry["talk_s"]) == ("answered", "sup1", "42")


async def test_an_unidentified_caller_is_logged_as_such_and_has_no_history(redis: Redis) -> None:
    recorder, _ = recorder_on(redis)
    await record(recorder, CallerProfile(None), Outcome(OutcomeResult.CALLER_HUNG_UP))

    [entry] = await last_decisions(redis, 5)
    assert entry["number"] == "unidentified" and entry["outcome"] == "caller_hung_up"
    assert await redis.keys("caseline:hist:*") == []


async def test_queue_outcomes_are_left_to_the_cdr(redis: Redis) -> None:
    recorder, history = recorder_on(redis)
    await record(recorder, A_PROFILE, Outcome(OutcomeResult.QUEUE, steps=["queue:operators"]))

    assert await contacts(history, A_CLIENT) == []  # the queue's CDR says who answered
    [entry] = await last_decisions(redis, 5)
    assert entry["outcome"] == "queue" and entry["steps"] == "queue:operators"
