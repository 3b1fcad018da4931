"""The world behind the in-memory ARI (fake.py): what exists, what happens, which events go out.

A test scripts it (phones, callers, key presses, hang-ups, a dropped websocket, another
process taking the app over) and observes it (channels and bridges alive, causes of the
destroyed ones, the requests Caseline made, `until` a state is reached).
"""
from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from ari_app.ari.fake_phones import (
    ASTERISK_ID,
    CAUSES,
    TIMESTAMP,
    Bridge,
    Channel,
    Phone,
)
from ari_app.ari.interface import Event
from ari_app.core.dialplan import INBOUND_ARG, OPERATORS_CONTEXT

CLOSED: dict[str, Any] = {"type": "closed"}  # ends one events() connection


class FakeAsterisk:
    def __init__(self, app: str = "caseline", *, event_types: tuple[str, ...] = ()) -> None:
        self.app = app
        self.event_types = event_types  # as HttpAri's filter: () sends every type
        self.phones: dict[str, Phone] = {}
        self.live_channels: dict[str, Channel] = {}  # (channels() is ARI's GET /channels)
        self.live_bridges: dict[str, Bridge] = {}
        self.destroyed: dict[str, int] = {}  # channel id -> Q.850 cause
        self.requests: list[tuple[str, dict[str, Any]]] = []  # (method, arguments by name)
        self.playing: dict[str, str] = {}  # playback id -> channel, until stopped
        self.prompt_digits: dict[tuple[str, str], list[str]] = {}
        self.queue: asyncio.Queue[Event] | None = None  # the connected app's, if any
        self.connections = 0  # events() connections opened so far
        self.globals: dict[str, str] = {}  # dialplan global variables (POST /asterisk/variable)
        self.version = "22.10.1"  # GET /asterisk/info's system.version (the lab's)
        self.booted = True  # False: ARI answers 503 "Asterisk not booted"
        self.modules = {"pbx_config.so"}  # loaded modules that PUT /asterisk/modules/{name} reloads
        # what the next module reloads answer instead of 204: (409, "Another reload is
        # currently in progress"), 202 (queued until fully booted), ...
        self.reload_answers: list[tuple[int, str]] = []
        # POST /applications/{app}/subscription: "endpoint:PJSIP" makes every change of a
        # PJSIP endpoint (a channel added or removed, a phone registering) an EndpointStateChange
        self.event_sources: set[str] = set()
        self.ids = itertools.count(1)
        self._changed = asyncio.Event()

    # --- scripting ------------------------------------------------------------------------

    def phone(self, endpoint: str) -> Phone:
        """The phone on `endpoint` ("PJSIP/mgr1"), made on first use; it answers by default.
        (Not `endpoint()`: that is ARI's GET /endpoints/{tech}/{resource}.)"""
        return self.phones.setdefault(endpoint, Phone(self, endpoint))

    def caller_arrives(self, number: str, channel_id: str | None = None) -> str:
        """A trunk call enters Stasis(caseline,inbound): StasisStart with args ["inbound"].
        With no app connected, Stasis() fails and the dialplan sends it to the operators."""
        channel = self.existing_channel("PJSIP/trunk", number=number, state="Ring",
                                        channel_id=channel_id)
        if self.queue is None:
            channel.in_app = channel.subscribed = False
            channel.context = OPERATORS_CONTEXT
            channel.variables["CASELINE_FALLBACK"] = "stasis_failed"
        else:
            self.emit("StasisStart", channel, args=[INBOUND_ARG])
        return channel.id

    def existing_channel(self, endpoint: str, *, number: str = "", app_args: str | None = "inbound",
                         state: str = "Up", channel_id: str | None = None) -> Channel:
        """A channel that is already there, without an event: in our app unless app_args is None."""
        n = next(self.ids)
        channel = Channel(channel_id or f"{endpoint.rpartition('/')[2]}-{n}",
                          f"{endpoint}-{n:08x}", endpoint, number, state)
        if app_args is not None:
            channel.in_app = channel.subscribed = True
            channel.context, channel.app_data = "caseline-route", f"{self.app},{app_args}"
        self.live_channels[channel.id] = channel
        self.endpoint_changed(endpoint)
        return channel

    def existing_bridge(self, bridge_id: str, channel_ids: list[str]) -> Bridge:
        bridge = self.live_bridges[bridge_id] = Bridge(bridge_id, list(channel_ids))
        for channel_id in channel_ids:
            self.live_channels[channel_id].bridge = bridge_id
        return bridge

    def hang_up(self, channel_id: str, cause: int = 16) -> None:
        """The caller, or the person on a leg, hangs up."""
        self.destroy(self.live_channels[channel_id], cause)

    def attended_transfer(self, leg_id: str, target_endpoint: str, *,
                          event_before_answer: bool = False) -> str:
        """The person on `leg_id` completes an attended transfer to `target_endpoint`, whom
        they consulted on a second call outside our app. As the lab's Asterisk 22 reports it
        (bridge.c links the two bridges with "Local/_attended@transfer"): the link's `;1`
        enters our bridge Down, comes Up, then BridgeAttendedTransfer names the consulted
        channel as `transfer_target`; the transferrer's leg leaves and is hung up.
        `event_before_answer`: the transfer event comes before the link's Up (seen too).
        Returns the link channel's id."""
        leg = self.live_channels[leg_id]
        bridge = self.live_bridges[leg.bridge or ""]
        n = next(self.ids)
        link = Channel(f"link-{n}", f"Local/_attended@transfer-{n:08x};1", "Local/_attended@transfer",
                       subscribed=True)
        target = Channel(f"consulted-{n}", f"{target_endpoint}-{n:08x}", target_endpoint, state="Up")
        self.live_channels[link.id] = link
        bridge.channels.append(link.id)
        link.bridge = bridge.id
        self.emit("ChannelEnteredBridge", link, bridge=bridge.json())
        event = {"type": "BridgeAttendedTransfer", "result": "Success", "is_external": False,
                 "transferer_first_leg": leg.json(), "transferer_first_leg_bridge": bridge.json(),
                 "transferer_second_leg": {"id": f"consult-{n}", "name": "consult", "state": "Up"},
                 "transferer_second_leg_bridge": {"id": f"consult-bridge-{n}"},
                 "transferee": self.live_channels[bridge.channels[0]].json(),
                 "transfer_target": target.json(), "destination_type": "link",
                 "destination_link_first_leg": link.json()}
        if event_before_answer:
            self.queue_put(event)
            self.set_state(link, "Up")
        else:
            self.set_state(link, "Up")
            self.queue_put({**event, "destination_link_first_leg": link.json()})
        self.destroy(leg, 16)  # the transferrer's phone is hung up by Asterisk
        return link.id

    def press(self, channel_id: str, digits: str) -> None:
        for digit in digits:
            self.emit("ChannelDtmfReceived", self.live_channels[channel_id], digit=digit,
                      duration_ms=120)

    def presses_during(self, channel_id: str, sound: str, *digits: str) -> None:
        """Each time `sound` plays to the channel, the next of `digits` is pressed meanwhile."""
        self.prompt_digits.setdefault((channel_id, f"sound:{sound}"), []).extend(digits)

    def picks_up(self, leg_id: str) -> None:
        leg = self.live_channels[leg_id]
        self.set_state(leg, "Up")  # the ANSWER frame sets the state, then reaches the bridge
        self.dial_event(leg, "ANSWER")

    def ring_times_out(self, leg_id: str) -> None:
        """ARI's dial timeout: Asterisk hangs the leg up with cause 19 (res/stasis/control.c)."""
        self.destroy(self.live_channels[leg_id], 19)

    def replace_app(self) -> None:
        """Another process registers our app name: this connection hears nothing after this."""
        self.queue_put({"type": "ApplicationReplaced"})
        self.queue = None

    def disconnect(self) -> None:
        """The websocket drops: events() raises AriUnavailable. Events until the app is
        back are lost: Asterisk does not replay them."""
        if self.queue is not None:
            self.queue.put_nowait(CLOSED)
        self.queue = None

    # --- observing --------------------------------------------------------------------------

    def sent(self, method: str) -> list[dict[str, Any]]:
        """The arguments of each `method` request Caseline made, in order."""
        return [args for name, args in self.requests if name == method]

    def legs(self, endpoint: str) -> list[Channel]:
        """Live channels on `endpoint` that belong to an ARI app (not the person's own calls)."""
        return [c for c in self.live_channels.values() if c.endpoint == endpoint and c.app_data]

    async def until(self, holds: Callable[[], object], timeout: float = 2.0) -> None:
        """Wait until `holds()`; checked again after every request and event."""
        async with asyncio.timeout(timeout):
            while not holds():
                await self._changed.wait()

    async def ringing(self, endpoint: str) -> str:
        """The id of Caseline's leg once the phone on `endpoint` rings."""
        await self.until(lambda: any(c.state == "Ringing" for c in self.legs(endpoint)))
        return next(c.id for c in self.legs(endpoint) if c.state == "Ringing")

    # --- Asterisk's side --------------------------------------------------------------------

    def emit(self, kind: str, channel: Channel | None = None, **fields: Any) -> None:
        if channel is not None:
            if not channel.subscribed:
                return
            fields["channel"] = channel.json()
        self.queue_put({"type": kind, **fields})

    def dial_event(self, leg: Channel, status: str) -> None:
        # no "caller": app_control_dial publishes ARI dials without one
        self.queue_put({"type": "Dial", "dialstatus": status, "forward": "",
                        "dialstring": leg.endpoint.partition("/")[2], "peer": leg.json()})

    def starts_ringing(self, leg: Channel) -> None:
        self.set_state(leg, "Ringing")  # chan_pjsip sets it on the 180; the frame makes the Dial
        self.dial_event(leg, "RINGING")

    def destroy(self, channel: Channel, cause: int) -> None:
        if channel.bridge:
            self.leave_bridge(channel)
        if channel.in_app:
            channel.in_app = False
            self.emit("StasisEnd", channel)
        self.emit("ChannelDestroyed", channel, cause=cause, cause_txt=CAUSES.get(cause, ""))
        del self.live_channels[channel.id]
        self.endpoint_changed(channel.endpoint)
        self.destroyed[channel.id] = cause
        self.playing = {p: c for p, c in self.playing.items() if c != channel.id}

    def endpoint_json(self, endpoint: str) -> dict[str, Any]:
        """ARI's Endpoint: GET /endpoints and EndpointStateChange's `endpoint`."""
        tech, _, resource = endpoint.partition("/")
        phone = self.phones.get(endpoint)
        return {"technology": tech, "resource": resource,
                "state": "online" if phone is None or phone.online else "offline",
                "channel_ids": [c.id for c in self.live_channels.values() if c.endpoint == endpoint]}

    def endpoint_changed(self, endpoint: str) -> None:
        """main/endpoints.c publishes a snapshot on every change; the app hears it if subscribed."""
        tech = endpoint.partition("/")[0]
        if {f"endpoint:{tech}", f"endpoint:{endpoint}"} & self.event_sources:
            self.queue_put({"type": "EndpointStateChange", "endpoint": self.endpoint_json(endpoint)})

    def leave_bridge(self, channel: Channel) -> None:
        bridge = self.live_bridges.get(channel.bridge or "")
        channel.bridge = None
        if bridge is not None:
            bridge.channels.remove(channel.id)
            self.emit("ChannelLeftBridge", channel, bridge=bridge.json())

    def set_state(self, channel: Channel, state: str) -> None:
        if channel.state != state:
            channel.state = state
            self.emit("ChannelStateChange", channel)

    def queue_put(self, event: dict[str, Any]) -> None:
        if self.queue is not None and (not self.event_types or event["type"] in self.event_types):
            event.update(timestamp=TIMESTAMP, asterisk_id=ASTERISK_ID, application=self.app)
            self.queue.put_nowait(event)
        self.touch()

    def touch(self) -> None:
        """Wake `until` waiters: something changed."""
        self._changed.set()
        self._changed = asyncio.Event()
