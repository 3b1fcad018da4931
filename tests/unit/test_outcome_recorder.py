"""What the outcome recorder remembers, on a real Redis: the capped decision log that
`caseline calls` reads (history comes from the calls' CDRs: test_cdr_listener.py)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from ari_app.config.history_settings import HistorySettings
from ari_app.core.decide import decide
from ari_app.core.models import (
    CallerProfile,
    Contact,
    CrmFacts,
    DialResult,
    Outcome,
    OutcomeResult,
    SourceStatus,
)
from ari_app.history.store import RedisHistoryStore
from ari_app.record.outcomes import DECISION_LOG, OutcomeRecorder, last_decisions
from ari_app.record.pending_writes import PendingWrites
from ari_app.record.replay import entries_since
from tests.support.fake_world import A_CLIENT, CLIENTS, NOW, policy_with, running

WINDOWS = HistorySettings().windows()
POLICY = policy_with()  # the shipped one
A_PROFILE = CallerProfile(A_CLIENT, crm=CrmFacts(SourceStatus.OK, CLIENTS[A_CLIENT]))


def recorder_on(redis: Redis) -> tuple[OutcomeRecorder, RedisHistoryStore]:
    history = RedisHistoryStore(redis, retention=WINDOWS.old)
    return OutcomeRecorder(redis, max_entries=100, pending=PendingWrites()), history


async def record(recorder: OutcomeRecorder, profile: CallerProfile, outcome: Outcome) -> datetime:
    started = datetime.now(UTC)  # history keeps contacts by the real clock's retention
    await recorder.record("call-1", started, profile, decide(profile, POLICY, NOW), outcome, 1.5)
    return started


async def contacts(history: RedisHistoryStore, number: str) -> list[Contact]:
    return await history.recent(number, datetime.now(UTC) - timedelta(days=1))


@pytest.mark.parametrize("result", [OutcomeResult.ANSWERED, OutcomeResult.CALLER_HUNG_UP,
                                    OutcomeResult.QUEUE, OutcomeResult.VOICEMAIL])
async def test_history_is_left_to_the_calls_own_records(redis: Redis, result: OutcomeResult) -> None:
    """Who talked is learned from the CDRs (a transfer may change it after our outcome)."""
    recorder, history = recorder_on(redis)
    await record(recorder, A_PROFILE, Outcome(result, answered_by="mgr1", steps=["mgr1:answered"]))
    assert await contacts(history, A_CLIENT) == []
    [entry] = await last_decisions(redis, 5)
    assert entry["outcome"] == result


async def test_a_call_routed_end_to_end_is_logged_once(redis: Redis) -> None:
    recorder, _ = recorder_on(redis)
    async with running(recorder=recorder) as world:  # a call routed end to end, then recorded
        fake = world.ari
        fake.phone("PJSIP/mgr1").answers()
        call_id = fake.caller_arrives(A_CLIENT)
        fake.hang_up(await world.talking(call_id))
        await world.outcome(call_id)

    [entry] = await last_decisions(redis, 5)
    assert (entry["call_id"], entry["answered_by"], entry["steps"]) == (call_id, "mgr1", "mgr1:answered")


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


async def test_reasons_are_read_back_as_a_list_of_rule_and_text(redis: Redis) -> None:
    """Every reader (caseline calls, GET /decisions, replay) gets a list, not the stored JSON text."""
    recorder, _ = recorder_on(redis)
    decision = decide(A_PROFILE, POLICY, NOW)
    await recorder.record("call-1", datetime.now(UTC), A_PROFILE, decision, Outcome(), 1.5)
    # entries stored by earlier versions (the same JSON text of pairs), a damaged one, none at all
    await redis.xadd(DECISION_LOG, {"call_id": "old", "reasons": '[["abc.A", "ABC A"], ["vip", "VIP chain"]]'})
    await redis.xadd(DECISION_LOG, {"call_id": "damaged", "reasons": "[[not json"})
    await redis.xadd(DECISION_LOG, {"call_id": "without"})

    without, damaged, old, entry = await last_decisions(redis, 5)
    assert entry["reasons"] == [{"rule": r.rule, "text": r.text} for r in decision.reasons]
    assert old["reasons"] == [{"rule": "abc.A", "text": "ABC A"}, {"rule": "vip", "text": "VIP chain"}]
    assert damaged["reasons"] == [] and without["reasons"] == []
    entries_read = await entries_since(redis, datetime.now(UTC) - timedelta(minutes=1))
    assert [e["reasons"] for e in entries_read] == [entry["reasons"], old["reasons"], [], []]


async def test_an_unidentified_caller_is_logged_as_such_and_has_no_history(redis: Redis) -> None:
    recorder, _ = recorder_on(redis)
    await record(recorder, CallerProfile(None), Outcome(OutcomeResult.CALLER_HUNG_UP))

    [entry] = await last_decisions(redis, 5)
    assert entry["number"] == "unidentified" and entry["outcome"] == "caller_hung_up"
    assert await redis.keys("caseline:hist:*") == []
