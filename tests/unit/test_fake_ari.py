"""The in-memory ARI answers and reports as Asterisk does (what the other tests rely on)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from ari_app.ari.fake import FakeAri
from ari_app.ari.fake_phones import Phone
from ari_app.ari.http import CONNECTED
from ari_app.ari.interface import (
    AriError,
    AriUnavailable,
    ChannelGone,
    Event,
    NotInStasis,
)


def queued(fake: FakeAri) -> list[dict]:
    """The events sent to the connected app and not read yet (no waiting)."""
    assert fake.queue is not None
    events = []
    while not fake.queue.empty():
        events.append(fake.queue.get_nowait())
    return events


def sent_so_far(fake: FakeAri) -> list[tuple[str, object]]:
    """(type, what it says): Dial's status, StasisStart's args, a cause, or the channel state."""
    def detail(e: dict) -> object:
        if e["type"] == "Dial":
            return e["dialstatus"]
        return e["args"] if "args" in e else e.get("cause", e["channel"]["state"])
    return [(e["type"], detail(e)) for e in queued(fake)]


async def connected(fake: FakeAri) -> AsyncIterator[Event]:
    events = fake.events()
    assert await anext(events) == {"type": CONNECTED}
    return events


async def test_a_caller_enters_stasis_with_the_inbound_argument() -> None:
    fake = FakeAri()
    await connected(fake)
    call_id = fake.caller_arrives("+79161234567")

    [event] = queued(fake)
    assert event["type"] == "StasisStart" and event["args"] == ["inbound"]
    channel = event["channel"]
    assert channel["id"] == call_id and channel["caller"]["number"] == "+79161234567"
    assert channel["dialplan"]["app_data"] == "caseline,inbound" and channel["state"] == "Ring"


RINGS_OUT = [("Dial", ""), ("ChannelStateChange", "Ringing"), ("Dial", "RINGING"),
             ("StasisEnd", "Ringing"), ("ChannelDestroyed", 19)]  # ARI's dial timeout


@pytest.mark.parametrize(("script", "events"), [
    (Phone.answers, [("Dial", ""), ("ChannelStateChange", "Ringing"), ("Dial", "RINGING"),
                     ("ChannelStateChange", "Up"), ("Dial", "ANSWER")]),
    (Phone.busy, [("Dial", ""), ("StasisEnd", "Down"), ("ChannelDestroyed", 17)]),
    (Phone.no_answer, RINGS_OUT),
    (lambda phone: phone.answers(after=25), RINGS_OUT),  # not within the dial's 25 s
])
async def test_a_dialled_leg_reports_as_asterisk_and_chan_pjsip_do(
        script: Callable[[Phone], object], events: list[tuple[str, object]]) -> None:
    fake = FakeAri()
    await connected(fake)
    script(fake.phone("PJSIP/mgr1"))
    await fake.create_channel("PJSIP/mgr1", channel_id="leg", app_args="leg,c1")
    assert sent_so_far(fake) == [("StasisStart", ["leg", "c1"])]

    await fake.dial("leg", 25, caller="c1")
    assert sent_so_far(fake) == events


async def test_requests_fail_as_asterisk_fails_them() -> None:
    fake = FakeAri()
    await connected(fake)
    fake.phone("PJSIP/mgr1").unregistered()
    call_id = fake.caller_arrives("+79161234567")
    await fake.continue_in_dialplan(call_id, "operators")

    with pytest.raises(NotInStasis):  # 409: it left our app
        await fake.set_variable(call_id, "CASELINE_PRIORITY", "70")
    with pytest.raises(ChannelGone):  # 404
        await fake.hangup("gone")
    with pytest.raises(AriError) as refused:  # no contact: ast_request fails
        await fake.create_channel("PJSIP/mgr1", channel_id="leg", app_args="leg,c1")
    assert refused.value.status == 500
    await fake.create_bridge("b")
    with pytest.raises(AriError) as bad:  # 400, not 404: resource_bridges.c
        await fake.add_to_bridge("b", ["gone"])
    assert bad.value.status == 400 and not isinstance(bad.value, ChannelGone)
    with pytest.raises(ChannelGone):
        await fake.endpoint("PJSIP/nobody")


async def test_a_dropped_connection_loses_the_events_until_the_app_is_back() -> None:
    fake = FakeAri()
    events = await connected(fake)
    fake.disconnect()
    fake.caller_arrives("+79161234567")  # Stasis() fails: the dialplan's app-away path
    with pytest.raises(AriUnavailable):
        await anext(events)

    await connected(fake)
    assert sent_so_far(fake) == [] and fake.connections == 2
    assert (await fake.application())["channel_ids"] == []


async def test_the_event_filter_passes_only_the_types_asked_for() -> None:
    fake = FakeAri(event_types=("StasisStart", "ChannelDestroyed"))
    await connected(fake)
    call_id = fake.caller_arrives("+79161234567")
    await fake.answer(call_id)  # ChannelStateChange: filtered out
    fake.hang_up(call_id)  # StasisEnd: filtered out

    assert sent_so_far(fake) == [("StasisStart", ["inbound"]), ("ChannelDestroyed", 16)]
