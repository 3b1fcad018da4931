"""FastAGI decisions kept until their CDRs come (record/agi_calls.py), on a real Redis: the
decision log entry once the call ended, its outcome from the walker's userfield, and the
bounds (count, age) that still log every decision."""
from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis

from ari_app.core.decide import decide
from ari_app.core.models import CallerProfile, CrmFacts, SourceStatus
from ari_app.core.route_program import compile_route
from ari_app.history.cdr import CdrRow
from ari_app.record.agi_calls import AgiCalls
from ari_app.record.outcomes import OutcomeRecorder, last_decisions
from ari_app.record.pending_writes import PendingWrites
from tests.support.fake_world import A_CLIENT, CLIENTS, NOW, policy_with

POLICY = policy_with()
PROFILE = CallerProfile(A_CLIENT, crm=CrmFacts(SourceStatus.OK, CLIENTS[A_CLIENT]))
DECISION = decide(PROFILE, POLICY, NOW)  # mgr1 -> sup1 -> operators
PROGRAM = compile_route(DECISION, PROFILE, endpoint_of=POLICY.endpoint_of, policy=POLICY)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def calls_on(redis: Redis, **kwargs) -> AgiCalls:
    recorder = OutcomeRecorder(redis, max_entries=100, pending=PendingWrites())
    return AgiCalls(recorder, None, lambda: POLICY, **kwargs)


def decide_call(calls: AgiCalls, call_id: str) -> None:
    calls.decided(call_id, datetime.now(UTC), PROFILE, DECISION, PROGRAM, 1.5)


def row(call_id: str, dst: str, *, userfield: str = "", answered: bool = False, billsec: int = 0,
        uniqueid: str | None = None) -> CdrRow:
    return CdrRow(src=A_CLIENT, dst="9100", dcontext="caseline-agi", channel="PJSIP/trunk-00000001",
                  dstchannel=dst, start=datetime.now(UTC), billsec=billsec, answered=answered,
                  uniqueid=uniqueid or call_id, linkedid=call_id, userfield=userfield)


async def test_the_entry_is_written_when_the_calls_cdrs_come(redis: Redis) -> None:
    calls = calls_on(redis)
    decide_call(calls, "1.1")
    assert await last_decisions(redis, 5) == []  # not before the call ended
    await calls.call_ended([
        row("1.1", "PJSIP/mgr1-00000001", userfield="caseline-agi:ok:0b."),  # an earlier record
        row("1.1", "PJSIP/sup1-00000002", userfield="caseline-agi:ok:0b.1a.", answered=True, billsec=37),
    ])
    [entry] = await last_decisions(redis, 5)
    assert (entry["call_id"], entry["steps"], entry["answered_by"], entry["talk_s"]) == (
        "1.1", "mgr1:busy > sup1:answered", "sup1", "37")
    assert calls.open == {}


async def test_cdrs_of_other_calls_are_left_alone(redis: Redis) -> None:
    calls = calls_on(redis)
    decide_call(calls, "1.1")
    await calls.call_ended([row("9.9", "PJSIP/op1-00000003", userfield="caseline-agi:ok:0a.")])
    assert await last_decisions(redis, 5) == [] and list(calls.open) == ["1.1"]


async def test_a_caller_who_left_before_any_step_ended_hung_up(redis: Redis) -> None:
    calls = calls_on(redis)
    decide_call(calls, "1.1")
    await calls.call_ended([row("1.1", "", userfield="caseline-agi:agi_failed:")])
    [entry] = await last_decisions(redis, 5)
    assert entry["outcome"] == "caller_hung_up"


async def test_over_the_bound_the_oldest_decision_is_logged_without_its_outcome(redis: Redis) -> None:
    calls = calls_on(redis, max_open=2)
    for call_id in ("1.1", "1.2", "1.3"):
        decide_call(calls, call_id)
    assert list(calls.open) == ["1.2", "1.3"]
    await calls._writing  # off the call's path
    [entry] = await last_decisions(redis, 5)
    assert (entry["call_id"], entry["outcome"]) == ("1.1", "unknown")


async def test_a_decision_whose_cdrs_never_come_is_logged_after_the_longest_call(redis: Redis) -> None:
    clock = Clock()
    calls = calls_on(redis, max_age_s=60, clock=clock)
    decide_call(calls, "1.1")
    clock.now += 61
    decide_call(calls, "1.2")
    await calls._writing
    [entry] = await last_decisions(redis, 5)
    assert (entry["call_id"], entry["outcome"]) == ("1.1", "unknown")
    await calls.close()  # and at shutdown, what is left
    assert [e["call_id"] for e in await last_decisions(redis, 5)] == ["1.2", "1.1"]
