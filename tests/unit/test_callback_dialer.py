"""The callback dialler on the in-memory ARI and a real Redis: the holder first, then the
client through the trunk with the company's caller ID, bridged; the outcome in history;
retries, failures, expiry, working hours, operators standing in, the queue's order."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from ari_app.ari.fake import FakeAri
from ari_app.config.callback_settings import CallbackSettings
from ari_app.config.history_settings import HistorySettings
from ari_app.core.clock import FixedClock
from ari_app.core.history_class import classify
from ari_app.core.models import CallbackKind, Contact, Direction, HistoryClass
from ari_app.core.policy import Policy
from ari_app.history.store import MemoryHistoryStore
from ari_app.record.callbacks import (
    CallbackFiler,
    CallbackRequest,
    CallbackStore,
    Status,
)
from ari_app.stasis.callback_dialer import CallbackDialer
from tests.support.fake_world import NOW, MemoryPresence, World, running

CLIENT = "+79161234567"
TRUNK = "PJSIP/79161234567@trunk"  # caseline.yaml callbacks.dial, PJSIP/{digits}@trunk
SUNDAY = datetime(2025, 3, 16, 9, 0, tzinfo=UTC)  # 12:00 in Moscow: closed all day
# keep_turn off: a request without a holder takes the first free operator (the turn mode,
# where it waits in the operators' queue instead, has its own tests below)
SETTINGS = CallbackSettings(poll_s=300, retry_after=timedelta(minutes=10), max_attempts=2,
                            keep_turn=False)
TURNS = SETTINGS.model_copy(update={"keep_turn": True})
TURN_AT_70 = "Local/070@caseline-callback-turn/n"


@dataclass
class Dialling:
    world: World
    ari: FakeAri
    store: CallbackStore
    filer: CallbackFiler
    dialer: CallbackDialer
    history: MemoryHistoryStore
    presence: MemoryPresence
    results: list[tuple[str, str]] = field(default_factory=list)  # (request id, result)

    async def file(self, number: str = CLIENT, holder: str = "mgr1", priority: int = 50,
                   **changes: object) -> CallbackRequest:
        req = self.filer.new(number, holder=holder, reason="test", priority=priority)
        req = CallbackRequest(**{**req.__dict__, **changes})
        assert await self.store.file(req) == req.id
        self.dialer.wake()  # as the ops API does once it filed one
        return req

    async def finished(self, count: int = 1) -> list[tuple[str, str]]:
        self.dialer.wake()
        await self.ari.until(lambda: len(self.results) >= count)
        return self.results

    async def contacts(self) -> list[Contact]:
        return await self.history.recent(CLIENT, NOW - timedelta(days=1))


@pytest.fixture
async def dialling(redis: Redis) -> AsyncIterator[Dialling]:
    async with running() as world:
        yield await _dialling(world, redis, FixedClock(NOW))


async def _dialling(world: World, redis: Redis, clock: FixedClock,
                    settings: CallbackSettings = SETTINGS, policy: Policy | None = None) -> Dialling:
    store = CallbackStore(redis)
    history, presence = MemoryHistoryStore(), MemoryPresence()
    results: list[tuple[str, str]] = []

    def finished(req: CallbackRequest, result: str) -> None:
        results.append((req.id, result))
        world.ari.touch()  # wakes `until`

    dialer = CallbackDialer(world.app, store, policy=lambda: policy or world.policy, history=history,
                            presence=presence, settings=settings, clock=clock, on_finished=finished)
    return Dialling(world, world.ari, store, CallbackFiler(store, settings, clock=clock), dialer,
                    history, presence, results)


@pytest.fixture
async def dialler_running(dialling: Dialling) -> AsyncIterator[Dialling]:
    task = asyncio.create_task(dialling.dialer.run())
    try:
        yield dialling
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def bridged(fake: FakeAri) -> list[str]:
    await fake.until(lambda: any(len(b.channels) == 2 for b in fake.live_bridges.values()))
    return next(b.channels for b in fake.live_bridges.values() if len(b.channels) == 2)


async def test_the_holder_answers_then_the_client_is_called_with_the_company_caller_id(
        dialler_running: Dialling) -> None:
    d, fake = dialler_running, dialler_running.ari
    fake.phone("PJSIP/mgr1").answers()
    fake.phone(TRUNK).answers()
    req = await d.file()
    person_leg, client_leg = await bridged(fake)
    holder, client = fake.sent("create_channel")
    assert holder["endpoint"] == "PJSIP/mgr1" and holder["channel_id"] == person_leg
    assert client["endpoint"] == TRUNK and client["channel_id"] == client_leg
    assert client["originator"] == person_leg  # one call for Asterisk (linkedid, CDR)
    # what each phone is shown (chan_pjsip's From is the connected line)
    shown = {(v["channel_id"], v["name"]): v["value"] for v in fake.sent("set_variable")}
    assert shown == {(person_leg, "CONNECTEDLINE(num,i)"): CLIENT,  # whom they call back
                     (person_leg, "CONNECTEDLINE(name,i)"): "Callback",
                     (client_leg, "CONNECTEDLINE(num,i)"): "+74950000000",  # company.caller_id
                     (client_leg, "CONNECTEDLINE(name,i)"): "Caseline lab"}
    assert [d.get("caller") for d in fake.sent("dial")] == [None, None]  # would overwrite it
    assert fake.sent("start_music")[0]["channel_id"] == person_leg  # while the client's phone rang
    assert (await d.store.get(req.id)).status is Status.DIALLING

    fake.hang_up(client_leg)  # the client hangs up: the holder's leg is hung up too
    assert await d.finished() == [(req.id, "answered")]
    assert fake.live_channels == {} and fake.live_bridges == {}
    done = await d.store.get(req.id)
    assert (done.status, done.person, done.attempts) == (Status.DONE, "mgr1", 1)
    [contact] = await d.contacts()
    assert (contact.direction, contact.answered, contact.manager) == (Direction.OUTBOUND, True, "mgr1")
    # the client's return call is a callback, to mgr1
    facts = classify(await d.contacts(), NOW + timedelta(minutes=5), HistorySettings().windows())
    assert (facts.cls, facts.callback_kind, facts.owner) == (HistoryClass.CALLBACK, CallbackKind.AFTER_TALK, "mgr1")
    assert d.presence.claims == {}


async def test_a_client_who_does_not_answer_gets_a_missed_call_and_a_retry(dialler_running: Dialling) -> None:
    d, fake = dialler_running, dialler_running.ari
    fake.phone("PJSIP/mgr1").answers()
    fake.phone(TRUNK).busy()
    req = await d.file()
    assert await d.finished() == [(req.id, "client_busy")]

    again = await d.store.get(req.id)
    assert (again.status, again.attempts, again.due_at) == (Status.OPEN, 1, NOW + timedelta(minutes=10))
    [contact] = await d.contacts()
    assert (contact.direction, contact.answered, contact.manager) == (Direction.OUTBOUND, False, "mgr1")
    facts = classify([contact], NOW + timedelta(minutes=5), HistorySettings().windows())
    assert (facts.cls, facts.callback_kind) == (HistoryClass.CALLBACK, CallbackKind.MISSED)
    assert fake.live_channels == {}


async def test_a_holder_who_does_not_answer_is_retried_then_the_request_fails(dialler_running: Dialling) -> None:
    d, fake = dialler_running, dialler_running.ari
    fake.phone("PJSIP/mgr1").no_answer()
    req = await d.file(attempts=1)  # one attempt already made: max_attempts is 2
    assert await d.finished() == [(req.id, "person_no_answer")]

    failed = await d.store.get(req.id)
    assert (failed.status, failed.attempts, failed.result) == (Status.FAILED, 2, "person_no_answer")
    assert [c["endpoint"] for c in fake.sent("create_channel")] == ["PJSIP/mgr1"]  # never the client
    assert await d.contacts() == []
    assert await d.store.due(NOW + timedelta(days=1)) == []


async def test_a_first_attempt_the_holder_misses_is_due_again_later(dialler_running: Dialling) -> None:
    d, fake = dialler_running, dialler_running.ari
    fake.phone("PJSIP/mgr1").unavailable()
    req = await d.file()
    assert await d.finished() == [(req.id, "person_unavailable")]
    assert await d.store.due(NOW) == []
    assert [r.id for r in await d.store.due(NOW + timedelta(minutes=10))] == [req.id]


async def test_outside_working_hours_nothing_is_dialled(redis: Redis) -> None:
    async with running() as world:
        d = await _dialling(world, redis, FixedClock(SUNDAY))
        world.ari.phone("PJSIP/mgr1").answers()
        req = await d.file()
        await d.dialer.poll()
        assert world.ari.sent("create_channel") == []
        assert (await d.store.get(req.id)).status is Status.OPEN

        # on demand it is placed all the same (`caseline callbacks dial ID`)
        task = asyncio.create_task(d.dialer.run())
        try:
            await asyncio.wait_for(d.dialer.running.wait(), 2)
            world.ari.phone(TRUNK).answers()
            status, answer = await d.dialer.dial_now(req.id)
            assert (status, answer["person"]) == (202, "mgr1")
            _, client_leg = await bridged(world.ari)
            world.ari.hang_up(client_leg)
            await world.ari.until(lambda: d.results)
            assert d.results == [(req.id, "answered")]
            assert (await d.dialer.dial_now(req.id))[0] == 409  # done: nothing to place
            assert (await d.dialer.dial_now("nosuchid"))[0] == 404
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_request_not_placed_in_time_expires_even_when_closed(redis: Redis) -> None:
    async with running() as world:
        d = await _dialling(world, redis, FixedClock(SUNDAY))
        req = await d.file(expires_at=SUNDAY - timedelta(minutes=1), filed_at=SUNDAY - timedelta(hours=1),
                           due_at=SUNDAY - timedelta(hours=1))
        await d.dialer.poll()
        expired = await d.store.get(req.id)
        assert (expired.status, expired.result) == (Status.EXPIRED, "expired")
        # the number is free for a new request
        assert await d.store.file(d.filer.new(CLIENT, holder="", reason="again", priority=0)) != req.id


async def test_a_holder_on_a_call_is_not_rung_and_the_request_waits(dialler_running: Dialling) -> None:
    d, fake = dialler_running, dialler_running.ari
    fake.phone("PJSIP/mgr1").on_a_call()
    req = await d.file()
    await d.dialer.poll()
    assert fake.sent("create_channel") == []
    assert (await d.store.get(req.id)).attempts == 0
    assert (await d.dialer.dial_now(req.id)) == (409, {"error": "mgr1 is on a call", "id": req.id})


async def test_without_a_holder_the_first_free_operator_calls_back(dialler_running: Dialling) -> None:
    d, fake = dialler_running, dialler_running.ari
    fake.phone("PJSIP/op1").on_a_call()  # busy: the queue keeps them talking
    fake.phone("PJSIP/op2").answers()
    fake.phone(TRUNK).answers()
    req = await d.file(holder="")
    _, client_leg = await bridged(fake)
    fake.hang_up(client_leg)
    assert await d.finished() == [(req.id, "answered")]
    assert [c["endpoint"] for c in fake.sent("create_channel")] == ["PJSIP/op2", TRUNK]
    [contact] = await d.contacts()
    assert contact.manager == "op2"


async def test_due_requests_are_placed_in_the_queue_order(redis: Redis) -> None:
    """Highest priority first, then the oldest: a caller who chose a call-back keeps their turn."""
    one_at_a_time = CallbackSettings(poll_s=300, max_parallel=1, keep_turn=False)
    async with running() as world:
        d = await _dialling(world, redis, FixedClock(NOW), one_at_a_time)
        fake = world.ari
        for n in ("79160000001", "79160000002", "79160000003"):
            fake.phone(f"PJSIP/{n}@trunk").answers()
        fake.phone("PJSIP/op1").answers()
        old_low = await d.file("+79160000001", holder="", priority=20, filed_at=NOW - timedelta(minutes=9))
        new_high = await d.file("+79160000002", holder="", priority=70, filed_at=NOW - timedelta(minutes=1))
        old_high = await d.file("+79160000003", holder="", priority=70, filed_at=NOW - timedelta(minutes=5))
        task = asyncio.create_task(d.dialer.run())
        try:
            for count in (1, 2, 3):
                _, client_leg = await bridged(fake)
                fake.hang_up(client_leg)
                await d.finished(count)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert [rid for rid, _ in d.results] == [old_high.id, new_high.id, old_low.id]


async def test_a_client_who_reached_us_meanwhile_is_not_called(dialler_running: Dialling) -> None:
    d, fake = dialler_running, dialler_running.ari
    req = await d.file(filed_at=NOW - timedelta(hours=1))
    await d.history.record(CLIENT, Contact(NOW - timedelta(minutes=30), Direction.INBOUND, True, "mgr2", 60))
    assert await d.finished() == [(req.id, "client_called_in")]
    assert fake.sent("create_channel") == []
    assert (await d.store.get(req.id)).status is Status.DONE


async def test_the_holder_hanging_up_while_the_client_rings_ends_the_attempt(dialler_running: Dialling) -> None:
    d, fake = dialler_running, dialler_running.ari
    fake.phone("PJSIP/mgr1").answers()
    fake.phone(TRUNK).keeps_ringing()
    req = await d.file()
    client_leg = await fake.ringing(TRUNK)
    person_leg = fake.sent("create_channel")[0]["channel_id"]
    fake.hang_up(person_leg)
    assert await d.finished() == [(req.id, "person_hung_up")]
    assert client_leg in fake.destroyed  # the client's phone stops ringing
    assert (await d.store.get(req.id)).status is Status.OPEN


@pytest.fixture
async def turns_running(redis: Redis) -> AsyncIterator[Dialling]:
    async with running() as world:
        d = await _dialling(world, redis, FixedClock(NOW), TURNS)
        task = asyncio.create_task(d.dialer.run())
        try:
            yield d
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_without_a_holder_the_request_waits_its_turn_in_the_operators_queue(
        turns_running: Dialling) -> None:
    """Its stand-in joins the queue at the request's priority and shows the client's number;
    once the queue connects it, the client is called and bridged to it. (Which operator the
    queue chose, Asterisk's MEMBERINTERFACE, is shown by the lab test.)"""
    d, fake = turns_running, turns_running.ari
    fake.phone(TURN_AT_70).answers()
    fake.phone(TRUNK).answers()
    req = await d.file(holder="", priority=70)
    turn_leg, client_leg = await bridged(fake)
    assert [c["endpoint"] for c in fake.sent("create_channel")] == [TURN_AT_70, TRUNK]
    assert [dial["timeout_s"] for dial in fake.sent("dial")] == [TURNS.turn_wait_s, TURNS.client_ring_s]
    shown = {(v["channel_id"], v["name"]): v["value"] for v in fake.sent("set_variable")}
    assert shown[(turn_leg, "CONNECTEDLINE(num,i)")] == CLIENT
    fake.hang_up(client_leg)
    assert await d.finished() == [(req.id, "answered")]
    assert d.presence.claims == {} and fake.live_channels == {}


async def test_a_turn_nobody_takes_in_time_is_placed_again_later(turns_running: Dialling) -> None:
    d, fake = turns_running, turns_running.ari
    fake.phone(TURN_AT_70).no_answer()
    req = await d.file(holder="", priority=70)
    assert await d.finished() == [(req.id, "turn_missed")]
    again = await d.store.get(req.id)
    assert (again.status, again.attempts) == (Status.OPEN, 1)
    assert [c["endpoint"] for c in fake.sent("create_channel")] == [TURN_AT_70]  # no client call


async def test_a_turn_waiting_in_the_queue_keeps_no_holder_request_waiting(redis: Redis) -> None:
    """Turns are bounded apart (max_turns): with max_parallel 1, a turn still waiting in the
    queue does not hold back a request for mgr1."""
    async with running() as world:
        d = await _dialling(world, redis, FixedClock(NOW), TURNS.model_copy(update={"max_parallel": 1}))
        fake = world.ari
        fake.phone(TURN_AT_70).keeps_ringing()
        fake.phone("PJSIP/mgr1").answers()
        fake.phone(TRUNK).answers()
        task = asyncio.create_task(d.dialer.run())
        try:
            await d.file(holder="", priority=70)
            await fake.until(lambda: len(fake.sent("dial")) == 1)
            await d.file("+79160000005", holder="mgr1")
            await fake.until(lambda: [c["endpoint"] for c in fake.sent("create_channel")][:2]
                             == [TURN_AT_70, "PJSIP/mgr1"])
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
