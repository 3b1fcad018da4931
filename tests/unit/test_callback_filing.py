"""Filing callback requests from calls, on the in-memory ARI with a real Redis: the after-hours
action `callback_request`, an IVR option "press 2 to be called back", one request per number."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from ari_app.config.callback_settings import CallbackSettings
from ari_app.core.clock import FixedClock
from ari_app.core.dialplan import OPERATORS_CONTEXT
from ari_app.core.models import OutcomeResult
from ari_app.core.policy import Policy
from ari_app.record.callbacks import (
    CallbackFiler,
    CallbackRequest,
    CallbackStore,
    Status,
)
from ari_app.record.pending_writes import PendingWrites
from tests.support.agi_walk import walking
from tests.support.fake_world import (
    A_CLIENT,
    C_CLIENT,
    NOW,
    World,
    policy_with,
    running,
)

# NOW is Wednesday 11:00 in Moscow: opening at noon makes it after hours
CLOSED_CALLBACK = policy_with(hours__wed=["12:00-19:00"], hours__after_hours__action="callback_request")


@asynccontextmanager
async def filing(redis: Redis, policy: Policy | None = None) -> AsyncIterator[tuple[World, CallbackStore]]:
    store = CallbackStore(redis)
    async with running(policy=policy) as world:
        # the executor as ari_app.main builds it: route steps `callback` file through this
        world.app.handler.executor.callbacks = CallbackFiler(
            store, CallbackSettings(), PendingWrites(), clock=FixedClock(NOW))
        yield world, store


async def only_request(store: CallbackStore) -> CallbackRequest:
    [req] = await store.listing()
    return req


async def test_after_hours_the_caller_hears_the_intro_and_a_request_is_filed(redis: Redis) -> None:
    async with filing(redis, CLOSED_CALLBACK) as (world, store):
        fake = world.ari
        call_id, outcome = await world.call(A_CLIENT)

    req = await only_request(store)
    assert outcome.steps == ["playback:vm-nobodyavail", f"callback:{req.id}"]
    assert outcome.result is OutcomeResult.CALLBACK
    assert [p["media"] for p in fake.sent("play")] == ["sound:vm-nobodyavail"]
    assert fake.destroyed[call_id] == 16  # then hung up
    assert (req.number, req.holder, req.reason, req.priority) == (A_CLIENT, "mgr1", "hours.after_hours", 70)
    assert (req.status, req.call_id, req.filed_at) == (Status.OPEN, call_id, NOW)
    assert [r.id for r in await store.due(NOW)] == [req.id]


async def test_calling_again_keeps_the_one_open_request(redis: Redis) -> None:
    async with filing(redis, CLOSED_CALLBACK) as (world, store):
        _, first = await world.call(A_CLIENT)
        _, second = await world.call(A_CLIENT)

    req = await only_request(store)
    assert first.steps[-1] == f"callback:{req.id}"
    assert second.steps[-1] == f"callback:{req.id}:already_open"


async def test_an_ivr_caller_who_chooses_a_callback_keeps_their_turn(redis: Redis) -> None:
    async with filing(redis) as (world, store):
        fake = world.ari
        call_id = fake.caller_arrives(C_CLIENT)
        fake.presses_during(call_id, "demo-instruct", "2")  # "2": ["callback:thanks", ...]
        outcome = await world.outcome(call_id)

    req = await only_request(store)
    assert outcome.steps == ["playback:demo-thanks", "ivr:main", "ivr:main:2", f"callback:{req.id}"]
    assert [p["media"] for p in fake.sent("play")][-1] == "sound:queue-thankyou"  # the confirmation
    assert call_id in fake.destroyed
    # the priority the operators' queue would have given them, and the moment they chose
    assert world.routed[call_id].decision.priority == 10
    assert (req.priority, req.filed_at, req.holder) == (10, NOW, "mgr2")
    assert req.reason == "ivr:main:2 (abc.C)"


async def test_a_filed_request_wakes_the_dialler_at_once(redis: Redis) -> None:
    """The dialler's poll is seconds apart: an IVR caller's turn must join the queue now."""
    wakes: list[str] = []
    async with filing(redis) as (world, store):
        world.app.handler.executor.callbacks.on_filed = lambda: wakes.append("wake")
        fake = world.ari
        call_id = fake.caller_arrives(C_CLIENT)
        fake.presses_during(call_id, "demo-instruct", "2")
        await world.outcome(call_id)
        again = fake.caller_arrives(C_CLIENT)  # the open request is returned: no new filing
        fake.presses_during(again, "demo-instruct", "2")
        await world.outcome(again)
    assert len(await store.listing()) == 1
    assert wakes == ["wake", "wake"]  # each filing landed (the second found the open one)


async def test_without_callback_requests_configured_the_caller_goes_to_the_operators(redis: Redis) -> None:
    async with running(policy=CLOSED_CALLBACK) as world:  # an executor without a filer
        call_id, outcome = await world.call(A_CLIENT)

    assert outcome.steps == ["playback:vm-nobodyavail", "callback:not_filed", "queue:operators"]
    assert world.ari.live_channels[call_id].context == OPERATORS_CONTEXT


async def test_a_fastagi_route_files_the_request_when_the_dialplan_reaches_the_step(redis: Redis) -> None:
    """Plain-dialplan sites: AGI(callback) at the callback step files it (the decision alone
    files nothing: a caller who hangs up during the intro asked for nothing)."""
    async with walking(redis, policy=CLOSED_CALLBACK) as walk:
        call = await walk.call("79161234567")
        req = await only_request(walk.store)
    assert call.vars["CASELINE_FILED"] == req.id
    assert (req.number, req.holder, req.reason, req.call_id) == (A_CLIENT, "mgr1", "hours.after_hours",
                                                                 call.uniqueid)
