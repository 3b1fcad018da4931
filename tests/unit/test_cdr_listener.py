"""The live learner: AMI Cdr events (cdr_manager's fields) gathered per call and learned once
the call is quiet, into real Redis (history and the decision log's `talks`)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from ari_app.config.settings import AmiSettings
from ari_app.core.learning import Role
from ari_app.core.models import Talk
from ari_app.history.cdr import LearningRules
from ari_app.history.store import RedisHistoryStore
from ari_app.record import cdr_listener
from ari_app.record.cdr_listener import CdrListener
from ari_app.record.outcomes import DECISION_LOG, last_decisions
from ari_app.record.pending_writes import PendingWrites

NOW = datetime.now(UTC).replace(microsecond=0)
CLIENT = "+79990001122"
RULES = LearningRules(people={"op1": "op1", "mgr2": "mgr2"},
                      roles={"op1": Role.OPERATOR, "mgr2": Role.MANAGER},
                      inbound_contexts=("operators",), people_contexts=("internal",), min_talk_s=10)


def cdr(channel: str, dstchannel: str, context: str, billsec: int, *, linkedid: str = "1765.1",
        src: str = CLIENT, **extra: str) -> dict[str, str]:
    """A Cdr event as cdr_manager sends it (with the LinkedID mapping of cdr_manager.conf)."""
    return {"Event": "Cdr", "AccountCode": "", "Source": src, "Destination": "s",
            "DestinationContext": context, "CallerID": f'"" <{src}>', "Channel": channel,
            "DestinationChannel": dstchannel, "LastApplication": "Queue", "LastData": "operators",
            "StartTime": "2026-12-07 12:00:00", "AnswerTime": "2026-12-07 12:00:02",
            "EndTime": "2026-12-07 12:01:00", "Duration": str(billsec + 2),
            "BillableSeconds": str(billsec), "Disposition": "ANSWERED", "AMAFlags": "DOCUMENTATION",
            "UniqueID": linkedid, "UserField": "", "LinkedID": linkedid, **extra}


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def listener(redis: Redis, clock: Clock, bad: list[int] | None = None) -> tuple[CdrListener, RedisHistoryStore]:
    history = RedisHistoryStore(redis, retention=timedelta(days=30))
    return CdrListener(AmiSettings(), history, lambda: RULES, PendingWrites(), redis=redis,
                       settle_s=2.0, clock=clock,
                       on_bad_event=(lambda: bad.append(1)) if bad is not None else None), history


async def test_a_transferred_call_is_learned_once_its_records_are_quiet(redis: Redis) -> None:
    clock = Clock()
    learner, history = listener(redis, clock)
    learner.add(cdr("PJSIP/trunk-0000000a", "PJSIP/op1-0000000b", "operators", 40), NOW)
    clock.t = 1.5
    learner.add(cdr("PJSIP/trunk-0000000a", "PJSIP/mgr2-0000000c", "internal", 180), NOW)
    clock.t = 3.0  # 1.5 s after the last record: the call may still be posting records
    assert await learner.flush() == 0 and await history.recent(CLIENT, NOW - timedelta(days=1)) == []
    clock.t = 3.6
    assert await learner.flush() == 1
    [contact] = await history.recent(CLIENT, NOW - timedelta(days=1))
    assert contact.talks == (Talk("op1", 40), Talk("mgr2", 180)) and contact.manager == "mgr2"
    assert learner.open == {}  # per-call state is dropped once learned


async def test_the_decision_log_shows_who_talked_in_the_end(redis: Redis) -> None:
    await redis.xadd(DECISION_LOG, {"call_id": "1765.1", "answered_by": "", "outcome": "queue"})
    clock = Clock()
    learner, _ = listener(redis, clock)
    learner.add(cdr("PJSIP/trunk-0000000a", "PJSIP/op1-0000000b", "operators", 40), NOW)
    learner.add(cdr("PJSIP/trunk-0000000a", "PJSIP/mgr2-0000000c", "internal", 180), NOW)
    await learner.flush(everything=True)
    [entry] = await last_decisions(redis, 5)
    assert (entry["answered_by"], entry["holder"], entry["talks"]) == ("mgr2", "mgr2", "op1 40s > mgr2 180s")


async def test_garbled_events_are_counted_and_teach_nothing(redis: Redis) -> None:
    bad: list[int] = []
    clock = Clock()
    learner, history = listener(redis, clock, bad)
    learner.add(cdr("PJSIP/trunk-0000000a", "PJSIP/mgr2-0000000c", "operators", 60, Duration="x"), NOW)
    learner.add(cdr("PJSIP/trunk-0000000a", "PJSIP/mgr2-0000000c", "operators", 60,
                    Disposition="ANSWERED\r\nEvent: Cdr"), NOW)
    learner.add(cdr("PJSIP/trunk-0000000a", "PJSIP/mgr2-0000000c", "operators", 60,
                    linkedid="1765.2", src="+7999\r\nSource: +79161234567"), NOW)  # not a number
    assert len(bad) == 2
    await learner.flush(everything=True)
    assert await redis.keys("caseline:history*") == [] and await redis.keys("*7916*") == []
    assert await history.recent(CLIENT, NOW - timedelta(days=1)) == []


async def test_open_calls_are_bounded(redis: Redis, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(cdr_listener, "MAX_OPEN_CALLS", 3)
    clock = Clock()
    learner, history = listener(redis, clock)
    for i in range(5):
        learner.add(cdr(f"PJSIP/trunk-0000001{i}", "PJSIP/mgr2-0000000c", "operators", 60,
                        linkedid=f"1765.{i}", src=f"+7999000112{i}"), NOW)
    assert len(learner.open) == 3  # the two oldest were set aside to be learned at once
    assert await learner.flush() == 2
    assert await learner.flush(everything=True) == 3


async def test_a_transfer_posting_its_local_half_first_waits_for_the_clients_records(
        redis: Redis) -> None:
    """Asterisk posts each channel's records when it ends: the transfer target's Local half
    may end seconds before the client's channel."""
    clock = Clock()
    learner, history = listener(redis, clock)
    local = "Local/mgr2@internal-0000000d"
    learner.add(cdr(f"{local};2", "PJSIP/mgr2-0000000e", "internal", 60, UniqueID="1765.9"), NOW)
    clock.t = 30.0  # long after settle_s: still waiting for the client's own records
    assert await learner.flush() == 0
    learner.add(cdr("PJSIP/trunk-0000000a", f"{local};1", "operators", 61), NOW)
    clock.t = 33.0
    assert await learner.flush() == 1
    [contact] = await history.recent(CLIENT, NOW - timedelta(days=1))
    assert contact.talks == (Talk("mgr2", 60),)


async def test_each_completed_call_is_handed_on_whole_even_when_the_taker_fails(redis: Redis) -> None:
    """FastAGI decisions take their outcome from here (record/agi_calls.py)."""
    clock = Clock()
    history = RedisHistoryStore(redis, retention=timedelta(days=30))
    taken: list[list[str]] = []

    async def on_call(rows) -> None:  # type: ignore[no-untyped-def]
        taken.append([r.userfield for r in rows])
        raise RuntimeError("a bug in the taker")

    learner = CdrListener(AmiSettings(), history, lambda: RULES, PendingWrites(), redis=redis,
                          settle_s=2.0, clock=clock, on_call=on_call)
    learner.add(cdr("PJSIP/trunk-0000000a", "PJSIP/op1-0000000b", "operators", 40,
                    UserField="caseline-agi:ok:0q."), NOW)
    learner.add(cdr("PJSIP/trunk-0000000d", "PJSIP/mgr2-0000000e", "operators", 50, linkedid="1765.2"), NOW)
    clock.t = 3.0
    assert await learner.flush() == 2  # both still learned
    assert sorted(taken) == [[""], ["caseline-agi:ok:0q."]]
