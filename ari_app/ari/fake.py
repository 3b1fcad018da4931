"""An in-memory ARI: the `Ari` interface over a scripted Asterisk, for tests and demos.

    fake = FakeAri()
    fake.phone("PJSIP/mgr1").busy()       # .answers(after=0) .no_answer() .unavailable() ...
    fake.phone("PJSIP/sup1").answers()
    call_id = fake.caller_arrives("+79161234567")
    ...                                   # Caseline (StasisApp on `fake`) routes the call
    assert fake.sent("continue_in_dialplan") == [{"channel_id": call_id, ...}]

Requests fail as Asterisk fails them (404 ChannelGone, 409/422 NotInStasis, 400, 500,
mapped by the real transport's `_error`), events come in Asterisk's order and JSON shape
(fake_phones.py says what is modelled), and every request is recorded. Nothing sleeps:
a request does its work, then yields to the loop once, as a round trip would.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ari_app.ari.fake_asterisk import CLOSED, FakeAsterisk
from ari_app.ari.fake_phones import ASTERISK_ID, HANGUP_REASONS, Bridge, Channel
from ari_app.ari.http import CONNECTED, _error
from ari_app.ari.interface import AriError, AriUnavailable, ChannelGone, Event


class FakeAri(FakeAsterisk):
    async def events(self) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self.queue = queue
        self.connections += 1
        yield {"type": CONNECTED}
        while (event := await queue.get()) is not CLOSED:
            yield event
        raise AriUnavailable("events websocket closed (fake)")

    # --- channels ------------------------------------------------------------------------

    async def answer(self, channel_id: str) -> None:
        self.set_state(self._control("answer", channel_id), "Up")
        await asyncio.sleep(0)

    async def ring(self, channel_id: str) -> None:
        self._control("ring", channel_id)
        await asyncio.sleep(0)

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        self._log("hangup", channel_id=channel_id, reason=reason)
        self.destroy(self._channel(channel_id), HANGUP_REASONS.get(reason, 16))
        await asyncio.sleep(0)

    async def play(self, channel_id: str, media: str, playback_id: str | None = None) -> str:
        self._control("play", channel_id, media=media, playback_id=playback_id)
        playback_id = playback_id or f"playback-{next(self.ids)}"
        playback = {"id": playback_id, "media_uri": media, "target_uri": f"channel:{channel_id}",
                    "language": "en", "state": "playing"}
        self.queue_put({"type": "PlaybackStarted", "playback": playback})
        digits = self.prompt_digits.get((channel_id, media))
        if digits:  # pressed during the prompt, which plays on until stopped
            self.press(channel_id, digits.pop(0))
            self.playing[playback_id] = channel_id
        else:  # a sound takes no time here
            self.queue_put({"type": "PlaybackFinished", "playback": {**playback, "state": "done"}})
        await asyncio.sleep(0)
        return playback_id

    async def stop_playback(self, playback_id: str) -> None:
        self._log("stop_playback", playback_id=playback_id)
        channel_id = self.playing.pop(playback_id, None)
        if channel_id is None:
            raise ChannelGone(404, "Playback not found")
        self.queue_put({"type": "PlaybackFinished", "playback": {
            "id": playback_id, "target_uri": f"channel:{channel_id}", "state": "done"}})
        await asyncio.sleep(0)

    async def start_music(self, channel_id: str, music_class: str) -> None:
        self._control("start_music", channel_id, music_class=music_class).music = True
        await asyncio.sleep(0)

    async def stop_music(self, channel_id: str) -> None:
        self._control("stop_music", channel_id).music = False
        await asyncio.sleep(0)

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        channel = self._control("set_variable", channel_id, name=name, value=value)
        channel.variables[name] = value
        self.emit("ChannelVarset", channel, variable=name, value=value)
        await asyncio.sleep(0)

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        channel = self._control("get_variable", channel_id, name=name)
        await asyncio.sleep(0)
        return channel.variables.get(name)

    async def set_global(self, name: str, value: str) -> None:
        self._log("set_global", name=name, value=value)
        self.globals[name] = value
        await asyncio.sleep(0)

    async def originate(self, endpoint: str, *, channel_id: str, app_args: str,
                        caller_id: str, timeout_s: int, originator: str | None = None,
                        variables: Mapping[str, str] | None = None) -> None:
        raise NotImplementedError("not modelled: Caseline creates and dials its legs")

    async def create_channel(self, endpoint: str, *, channel_id: str, app_args: str,
                             originator: str | None = None,
                             variables: Mapping[str, str] | None = None) -> None:
        variables = dict(variables or {})
        self._log("create_channel", endpoint=endpoint, channel_id=channel_id, app_args=app_args,
                  originator=originator, variables=variables)
        if channel_id in self.live_channels:
            raise AriError(409, "Channel with given unique ID already exists")
        phone = self.phones.get(endpoint)
        if phone is None or phone.create_error:  # an unknown endpoint: ast_request fails
            status, message = phone.create_error if phone and phone.create_error else (
                500, "Allocation failed")
            raise _error(status, f"POST /channels/create: {message}")
        leg = Channel(channel_id, f"{endpoint}-{next(self.ids):08x}", endpoint,
                      variables.get("CALLERID(num)", ""), app_data=f"{self.app},{app_args}",
                      subscribed=True, variables=variables)  # create subscribes the app
        self.live_channels[leg.id] = leg
        self.endpoint_changed(endpoint)
        if phone.vanish:
            self.destroy(leg, 16)  # ChannelDestroyed only: it never reached Stasis
        else:
            leg.in_app = True
            self.emit("StasisStart", leg, args=app_args.split(","))
        await asyncio.sleep(0)

    async def dial(self, channel_id: str, timeout_s: int, caller: str | None = None) -> None:
        leg = self._control("dial", channel_id, timeout_s=timeout_s, caller=caller)
        if leg.state != "Down":
            raise AriError(409, "Channel is not in the 'Down' state")
        self.phones[leg.endpoint].dialled(leg, timeout_s)
        await asyncio.sleep(0)

    async def continue_in_dialplan(self, channel_id: str, context: str, extension: str = "s",
                                   priority: int = 1) -> None:
        channel = self._control("continue_in_dialplan", channel_id, context=context,
                                extension=extension, priority=priority)
        if channel.bridge:
            self.leave_bridge(channel)
        channel.in_app, channel.context = False, context
        self.emit("StasisEnd", channel)
        channel.subscribed = False  # the app unsubscribes from a channel that leaves it
        await asyncio.sleep(0)

    async def channels(self) -> list[dict[str, Any]]:
        self._log("channels")
        await asyncio.sleep(0)
        return [c.json() for c in self.live_channels.values()]

    async def channel(self, channel_id: str) -> dict[str, Any]:
        self._log("channel", channel_id=channel_id)
        await asyncio.sleep(0)
        return self._channel(channel_id).json()

    # --- bridges, endpoints, system ------------------------------------------------------

    async def create_bridge(self, bridge_id: str) -> None:
        self._log("create_bridge", bridge_id=bridge_id)
        if bridge_id in self.live_bridges:
            raise AriError(409, f"Bridge with id '{bridge_id}' already exists")
        bridge = self.live_bridges[bridge_id] = Bridge(bridge_id)
        self.queue_put({"type": "BridgeCreated", "bridge": bridge.json()})
        await asyncio.sleep(0)

    async def add_to_bridge(self, bridge_id: str, channel_ids: list[str]) -> None:
        self._log("add_to_bridge", bridge_id=bridge_id, channel_ids=list(channel_ids))
        bridge = self._bridge(bridge_id)
        for channel_id in channel_ids:  # resource_bridges.c: 400 if gone, 422 if not ours
            if channel_id not in self.live_channels:
                raise _error(400, f"POST /bridges/{bridge_id}/addChannel: Channel not found")
            if not self.live_channels[channel_id].in_app:
                raise _error(422, "Channel not in Stasis application")
        for channel_id in channel_ids:
            channel = self.live_channels[channel_id]
            if channel.bridge:
                self.leave_bridge(channel)
            channel.bridge = bridge_id
            bridge.channels.append(channel_id)
            self.emit("ChannelEnteredBridge", channel, bridge=bridge.json())
        await asyncio.sleep(0)

    async def destroy_bridge(self, bridge_id: str) -> None:
        self._log("destroy_bridge", bridge_id=bridge_id)
        bridge = self._bridge(bridge_id)
        for channel_id in list(bridge.channels):
            self.leave_bridge(self.live_channels[channel_id])
        del self.live_bridges[bridge_id]
        self.queue_put({"type": "BridgeDestroyed", "bridge": bridge.json()})
        await asyncio.sleep(0)

    async def bridges(self) -> list[dict[str, Any]]:
        self._log("bridges")
        await asyncio.sleep(0)
        return [b.json() for b in self.live_bridges.values()]

    async def endpoint(self, endpoint: str) -> dict[str, Any]:
        self._log("endpoint", endpoint=endpoint)
        phone = self.phones.get(endpoint)
        if phone is None:
            raise ChannelGone(404, "Endpoint not found")
        await asyncio.sleep(0)
        return self.endpoint_json(endpoint)

    async def endpoints(self) -> list[dict[str, Any]]:
        """GET /endpoints: every phone the test made, plus any endpoint with a channel."""
        self._log("endpoints")
        await asyncio.sleep(0)
        names = dict.fromkeys([*self.phones, *(c.endpoint for c in self.live_channels.values())])
        return [self.endpoint_json(name) for name in names]

    async def subscribe(self, event_source: str) -> None:
        """POST /applications/{app}/subscription; 422 for a source Asterisk does not know."""
        self._log("subscribe", event_source=event_source)
        await asyncio.sleep(0)
        kind, _, name = event_source.partition(":")
        if kind != "endpoint" or not name:
            raise _error(422, f"POST /applications/{self.app}/subscription: Event source not found")
        self.event_sources.add(event_source)

    async def asterisk_info(self) -> dict[str, Any]:
        self._log("asterisk_info")
        self._booted("GET /asterisk/info")
        await asyncio.sleep(0)
        return {"system": {"version": self.version, "entity_id": ASTERISK_ID}}

    async def reload_module(self, module: str) -> bool:
        """resource_asterisk.c: 404 not loaded, 409 refused or busy, 202 queued, else 204."""
        self._log("reload_module", module=module)
        self._booted(f"PUT /asterisk/modules/{module}")
        await asyncio.sleep(0)
        if module not in self.modules:
            raise _error(404, f"PUT /asterisk/modules/{module}: Module not found in running modules")
        status, message = self.reload_answers.pop(0) if self.reload_answers else (204, "")
        if status >= 400:
            raise _error(status, f"PUT /asterisk/modules/{module}: {message}")
        return status != 202

    async def application(self) -> dict[str, Any]:
        self._log("application")
        await asyncio.sleep(0)
        return {"name": self.app, "bridge_ids": list(self.live_bridges), "endpoint_ids": [],
                "channel_ids": [c.id for c in self.live_channels.values() if c.subscribed],
                "device_names": [], "events_allowed": [], "events_disallowed": []}

    # --- plumbing ------------------------------------------------------------------------

    def _log(self, method: str, **args: Any) -> None:
        self.requests.append((method, args))
        self.touch()

    def _booted(self, request: str) -> None:
        if not self.booted:  # res_ari answers every request so until Asterisk is fully booted
            raise _error(503, f"{request}: Asterisk not booted")

    def _control(self, method: str, channel_id: str, **args: Any) -> Channel:
        """Log a request on a channel of our app; res/ari's find_control: 404, else 409."""
        self._log(method, channel_id=channel_id, **args)
        channel = self._channel(channel_id)
        if not channel.in_app:
            raise _error(409, f"{method}: Channel not in Stasis application")
        return channel

    def _channel(self, channel_id: str) -> Channel:
        if channel_id not in self.live_channels:
            raise ChannelGone(404, "Channel not found")
        return self.live_channels[channel_id]

    def _bridge(self, bridge_id: str) -> Bridge:
        if bridge_id not in self.live_bridges:
            raise ChannelGone(404, "Bridge not found")
        return self.live_bridges[bridge_id]
