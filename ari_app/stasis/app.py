"""The Stasis application: one events connection, one task per call, reconnect with backoff.

Calls outlive the events connection: the REST session stays, only the websocket is
re-opened, so bridged calls keep talking while we are away; after a reconnect we resync
from `/channels` because Asterisk does not replay missed events.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from ari_app.ari.http import CONNECTED
from ari_app.ari.interface import Ari, AriError, AriUnavailable, Event
from ari_app.core.admission import ShedTarget
from ari_app.core.dialplan import INBOUND_ARG
from ari_app.core.numbers import mask
from ari_app.stasis.call import ENDED, TRANSFERS, Call, CallEnded, Subscriptions, channel_of
from ari_app.stasis.shed import Shed, hand_off

log = logging.getLogger("caseline.stasis.app")



class Replaced(Exception):
    """ApplicationReplaced: another process took our app name; this one must stop."""


CallHandler = Callable[[Call], Awaitable[None]]


class StasisApp:
    def __init__(self, ari: Ari, handler: CallHandler, *, backoff_cap_s: float = 10.0,
                 on_reconnect: Callable[[], None] | None = None,
                 on_call_error: Callable[[Call, BaseException], Awaitable[None]] | None = None,
                 shed: Shed | None = None) -> None:
        self.ari = ari
        self.handler = handler
        self.subscriptions = Subscriptions()
        self.calls: dict[str, Call] = {}
        self.backoff_cap_s = backoff_cap_s
        self.on_reconnect = on_reconnect
        self.on_call_error = on_call_error
        self.shed = shed  # admission control: asked once per new caller
        self._handing_off: set[str] = set()  # shed callers whose hand-over is in flight
        self.connected = asyncio.Event()
        self.replaced = False
        self._tasks: asyncio.TaskGroup | None = None

    async def run(self) -> None:
        """Run until cancelled or replaced: (re)connect, resync, dispatch events."""
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                await self._connect_loop()
        except* Replaced:
            log.warning("stopped: another process owns the ARI application now")

    async def _connect_loop(self) -> None:
        attempt = 0
        while True:
            try:
                async for event in self.ari.events():
                    if event.get("type") == CONNECTED:
                        await self.resync()
                        log.info("ARI events connected: application registered")
                        self.connected.set()
                        attempt = 0
                        continue
                    self.dispatch(event)
            except (AriUnavailable, AriError) as e:
                self.connected.clear()
                attempt += 1
                delay = min(self.backoff_cap_s, 0.2 * 2 ** min(attempt, 10))
                delay *= random.uniform(0.5, 1.0)  # jitter: instances don't reconnect in step
                log.warning("ARI events lost (%s); reconnecting in %.2f s", e, delay)
                if self.on_reconnect:
                    self.on_reconnect()
                await asyncio.sleep(delay)

    def dispatch(self, event: Event) -> None:
        """Route one event to the call watching its channel, or start a call."""
        kind = event.get("type")
        if kind == "ApplicationReplaced":
            # Another process registered our app name (rolling deploy): its resync adopts
            # our calls; ours must stop without touching them.
            self.replaced = True
            raise Replaced()
        if kind == "StasisStart":
            args = event.get("args") or []
            channel = event.get("channel") or {}
            channel_id = channel.get("id")
            # a channel that replaces another (a transfer's Local half) is not a new caller
            if (args[:1] == [INBOUND_ARG] and channel_id and channel_id not in self.calls
                    and not event.get("replace_channel")):
                self.start_call(channel)
                return
        channel_id = channel_of(event)
        call = self.subscriptions.by_channel.get(channel_id) if channel_id else None
        if call is None and kind == "ChannelEnteredBridge":
            call = self.subscriptions.by_bridge.get((event.get("bridge") or {}).get("id", ""))
        if call is None and kind in TRANSFERS:
            # the transferrer's leg may be gone (and unwatched) by the time Asterisk reports
            # the transfer: the bridge it happened in is still ours
            for key in ("bridge", "transferer_first_leg_bridge", "transferer_second_leg_bridge"):
                call = self.subscriptions.by_bridge.get((event.get(key) or {}).get("id", ""))
                if call is not None:
                    break
        if call is not None:
            call.deliver(event)

    async def resync(self) -> None:
        """After (re)connecting: Asterisk does not replay events, so look at what is there.

        - a channel we watch that is gone: its call gets a synthetic ChannelDestroyed;
        - a caller waiting in our app that we don't know (arrived while we were away, or
          left by a process that died): routed now;
        - a bridge of ours with people talking that nobody watches: guarded, so that when
          one side hangs up the other is hung up too;
        - any other channel of ours nobody owns (a ringing leg of a dead call): hung up.
        """
        app = await self.ari.application()
        in_app = set(app.get("channel_ids") or [])
        for channel_id in list(self.subscriptions.by_channel):
            if channel_id not in in_app:
                self.subscriptions.by_channel[channel_id].deliver(
                    {"type": "ChannelDestroyed", "channel": {"id": channel_id}, "cause": 16,
                     "synthetic": True})
        unknown = in_app - set(self.subscriptions.by_channel)
        if not unknown:
            return
        bridged: set[str] = set()
        for bridge in await self.ari.bridges():
            members = set(bridge.get("channels") or [])
            if members & unknown:
                bridged |= members
                self._guard_bridge(bridge["id"], members)
        for channel in await self.ari.channels():
            channel_id = channel.get("id")
            if channel_id not in unknown or channel_id in bridged:
                continue
            app_data = str((channel.get("dialplan") or {}).get("app_data", ""))
            if app_data.split(",")[1:2] == [INBOUND_ARG]:
                log.info("resync: routing caller %s that arrived while we were away", channel_id)
                self.start_call(channel)
            else:
                log.info("resync: hanging up orphan channel %s", channel_id)
                try:
                    await self.ari.hangup(channel_id)
                except AriError:
                    pass

    def _guard_bridge(self, bridge_id: str, members: set[str]) -> None:
        assert self._tasks is not None
        log.info("resync: adopting bridge %s (%d channels)", bridge_id, len(members))
        guard = self._new_call({"id": f"guard-{bridge_id}"})
        for channel_id in members:
            guard.watch(channel_id)
        self._tasks.create_task(self._hold_bridge(guard, bridge_id, members))

    async def _hold_bridge(self, guard: Call, bridge_id: str, members: set[str]) -> None:
        """Wait until one side of an adopted bridge leaves, then end the other side too."""
        try:
            await guard.wait_for(lambda e: e.get("type") in ENDED, timeout=4 * 3600)
        except TimeoutError:
            pass
        finally:
            if not self.replaced:
                for channel_id in members:
                    try:
                        await self.ari.hangup(channel_id)
                    except AriError:
                        pass
                try:
                    await self.ari.destroy_bridge(bridge_id)
                except AriError:
                    pass
            for channel_id in members:
                guard.unwatch(channel_id)

    def _new_call(self, channel: dict[str, Any]) -> Call:
        return Call(self.ari, channel, self.subscriptions, lambda: self.replaced)

    def start_call(self, channel: dict[str, Any]) -> Call | None:
        """Route a new caller in a task of its own; None if admission control sheds it."""
        assert self._tasks is not None
        if channel["id"] in self._handing_off:  # a resync while its hand-over is in flight
            return None
        target = self.shed((channel.get("caller") or {}).get("number")) if self.shed else None
        if target is not None:  # over a bound: straight on in the dialplan, never in `calls`
            self._handing_off.add(channel["id"])
            self._tasks.create_task(self._hand_off(channel["id"], target), name=f"shed-{channel['id']}")
            return None
        call = self._new_call(channel)
        self.calls[call.id] = call
        call.watch(call.id)
        self._tasks.create_task(self._run_call(call), name=f"call-{call.id}")
        return call

    async def _hand_off(self, channel_id: str, target: ShedTarget) -> None:
        try:
            await hand_off(self.ari, channel_id, target)
        except Exception:  # like a call's: one broken hand-over must not take the app down
            log.exception("shed call %s: hand-over failed", channel_id)
        finally:
            self._handing_off.discard(channel_id)

    async def _run_call(self, call: Call) -> None:
        try:
            await self.handler(call)
        except CallEnded:
            pass
        except asyncio.CancelledError:
            raise
        except Exception as e:  # one broken call must not take the others down
            log.exception("call %s failed in step %s", call.id, call.step)
            if self.on_call_error:
                await self.on_call_error(call, e)
        finally:
            for channel_id in list(call.watched):
                call.unwatch(channel_id)
            self.calls.pop(call.id, None)

    def live_calls(self) -> list[dict[str, Any]]:
        """The calls in progress as ops see them (GET /calls): numbers masked."""
        calls = []
        for call in list(self.calls.values()):
            entry: dict[str, Any] = {"call_id": call.id, "step": call.step}
            routed = call.routed
            if routed is not None:
                entry.update({
                    "number": mask(routed.profile.number),
                    "class": str(routed.profile.history.cls),
                    "service": str(routed.decision.service),
                    "priority": routed.decision.priority,
                    "route": [f"{s.kind}:{s.target}" for s in routed.decision.route],
                })
            calls.append(entry)
        return calls
