"""The Stasis application on the in-memory ARI: adopting what it finds after a restart,
a dropped websocket, and another process taking the application over."""
from __future__ import annotations

import asyncio

from ari_app.ari.fake import FakeAri
from ari_app.core.dialplan import OPERATORS_CONTEXT
from ari_app.core.models import OutcomeResult
from tests.support.fake_world import A_CLIENT, NEW_CALLER, running


async def test_resync_guards_a_bridge_nobody_watches_and_ends_it_when_one_side_leaves() -> None:
    fake = FakeAri()  # left by a process that died while its call was talking
    caller = fake.existing_channel("PJSIP/trunk", number=A_CLIENT).id
    leg = fake.existing_channel("PJSIP/mgr1", app_args="leg,old-call").id
    fake.existing_bridge("old-call-bridge", [caller, leg])
    async with running(fake) as world:
        assert fake.sent("hangup") == []  # adopted: the call keeps talking
        fake.hang_up(caller)
        await fake.until(lambda: not fake.live_bridges)

    assert world.outcomes == {}  # guarded, not routed
    assert {"channel_id": leg, "reason": "normal"} in fake.sent("hangup")
    assert fake.sent("destroy_bridge") == [{"bridge_id": "old-call-bridge"}]
    assert fake.live_channels == {}


async def test_resync_routes_a_caller_waiting_in_the_app_that_it_does_not_know() -> None:
    fake = FakeAri()  # entered Stasis while no process was connected to hear its StasisStart
    waiting = fake.existing_channel("PJSIP/trunk", number=NEW_CALLER, state="Ring").id
    async with running(fake) as world:
        outcome = await world.outcome(waiting)

    assert outcome.result is OutcomeResult.QUEUE
    assert fake.live_channels[waiting].context == OPERATORS_CONTEXT


async def test_resync_hangs_up_an_orphan_leg() -> None:
    fake = FakeAri()  # still ringing for a call whose process died
    orphan = fake.existing_channel("PJSIP/mgr1", app_args="leg,old-call", state="Ringing").id
    async with running(fake):
        await fake.until(lambda: orphan not in fake.live_channels)

    assert fake.sent("hangup") == [{"channel_id": orphan, "reason": "normal"}]


async def test_a_dropped_websocket_is_reopened_and_a_leg_lost_meanwhile_ends_its_ringing() -> None:
    async with running() as world:
        fake = world.ari
        fake.phone("PJSIP/mgr1").keeps_ringing()
        fake.phone("PJSIP/sup1").answers()
        call_id = fake.caller_arrives(A_CLIENT)
        leg = await fake.ringing("PJSIP/mgr1")
        fake.disconnect()
        fake.ring_times_out(leg)  # its ChannelDestroyed is lost with the connection
        # resync finds the leg gone and tells the call: the route goes on at once
        fake.hang_up(await world.talking(call_id))
        outcome = await world.outcome(call_id)

    assert fake.connections == 2
    assert outcome.steps == ["mgr1:unavailable", "sup1:answered"]


async def test_application_replaced_stops_the_app_and_leaves_its_calls_talking() -> None:
    async with running() as world:
        fake = world.ari
        fake.phone("PJSIP/mgr1").answers()
        call_id = fake.caller_arrives(A_CLIENT)
        leg = await world.talking(call_id)
        before = len(fake.requests)
        fake.replace_app()
        async with asyncio.timeout(2):
            await world.task  # run() returns: the app stopped

        assert world.app.replaced and world.app.calls == {}
        assert fake.requests[before:] == []  # no hang-up, no bridge destroyed
        [bridge] = fake.live_bridges.values()
        assert bridge.channels == [call_id, leg]
        assert world.outcomes[call_id].result is OutcomeResult.INTERRUPTED
