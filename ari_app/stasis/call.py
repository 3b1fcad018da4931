"""One inbound call in Stasis, with all its state declared here.

The call's task is the only writer of its state; ops (live calls) and the app's dispatcher
only read it. `__slots__` makes an attribute set from outside that is not declared here fail.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ari_app.ari.interface import Ari, Event

if TYPE_CHECKING:
    from ari_app.router import Routed

ENDED = ("StasisEnd", "ChannelDestroyed")
TRANSFERS = ("BridgeBlindTransfer", "BridgeAttendedTransfer")


class CallEnded(Exception):
    """The caller's channel is gone; raised out of waits so a call task unwinds."""


def transfer_target(event: Event) -> str | None:
    """The channel that takes the transferrer's place in our bridge after a transfer.

    A blind transfer swaps in a Local channel (`replace_channel`) whose other half dials the
    target; an attended one links the bridges with a Local pair or brings the target itself.

    >>> transfer_target({"type": "BridgeBlindTransfer", "result": "Success",
    ...                  "replace_channel": {"id": "local-1"}})
    'local-1'
    >>> transfer_target({"type": "BridgeBlindTransfer", "result": "Fail"}) is None
    True
    """
    if event.get("result") != "Success":
        return None
    for key in ("replace_channel", "destination_link_first_leg", "transfer_target"):
        channel = event.get(key)
        if isinstance(channel, dict) and channel.get("id"):
            return str(channel["id"])
    return None


def channel_of(event: Event) -> str | None:
    """The channel an event is about (Dial events: the dialled peer).

    >>> channel_of({"type": "Dial", "peer": {"id": "leg-1"}, "caller": {"id": "c"}})
    'leg-1'
    >>> channel_of({"type": "PlaybackFinished", "playback": {"target_uri": "channel:c1"}})
    'c1'
    >>> channel_of({"type": "BridgeDestroyed"}) is None
    True
    """
    if event.get("type") == "Dial":
        peer = event.get("peer") or {}
        return peer.get("id")
    if event.get("type") == "BridgeAttendedTransfer":  # about the transferrer's leg in our bridge
        return (event.get("transferer_first_leg") or {}).get("id")
    if "channel" in event and isinstance(event["channel"], dict):
        return event["channel"].get("id")
    playback = event.get("playback")
    if isinstance(playback, dict):
        uri = str(playback.get("target_uri", ""))
        if uri.startswith("channel:"):
            return uri.removeprefix("channel:")
    return None


class Subscriptions:
    """Which call receives the events of which channel (shared by all calls of one app)."""

    def __init__(self) -> None:
        self.by_channel: dict[str, Call] = {}
        self.by_bridge: dict[str, Call] = {}  # bridges we made: who joins them (a transfer)


class Call:
    """One inbound call as its task sees it: its channels' events, the ARI handle, its state."""

    __slots__ = ("ari", "id", "channel", "events", "watched", "subscriptions", "is_replaced",
                 "hung_up", "step", "routed", "priority", "answered", "music_on", "bridge")

    def __init__(self, ari: Ari, channel: dict[str, Any], subscriptions: Subscriptions,
                 is_replaced: Callable[[], bool] = lambda: False) -> None:
        self.ari = ari
        self.id: str = channel["id"]
        self.channel = channel
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.watched: set[str] = set()
        self.subscriptions = subscriptions
        self.is_replaced = is_replaced  # another process took our app over: leave calls alone
        # state, written by the call's own task only
        self.hung_up = False  # the caller's channel ended
        self.step = "identifying"  # what the call is doing now, for ops
        self.routed: Routed | None = None  # the decision, once made
        self.priority = 0  # QUEUE_PRIO if the call reaches a queue
        self.answered = False  # we answered the caller's channel
        self.music_on = False  # the caller hears music on hold
        self.bridge: str | None = None  # the bridge holding the caller and a person

    @property
    def caller_number(self) -> str:
        return str((self.channel.get("caller") or {}).get("number", ""))

    def watch(self, channel_id: str) -> None:
        """Route events of `channel_id` to this call. Call before the action that causes them."""
        self.watched.add(channel_id)
        self.subscriptions.by_channel[channel_id] = self

    def unwatch(self, channel_id: str) -> None:
        self.watched.discard(channel_id)
        if self.subscriptions.by_channel.get(channel_id) is self:
            del self.subscriptions.by_channel[channel_id]

    def watch_bridge(self, bridge_id: str) -> None:
        """Route events of our bridge to this call (a transfer swaps a channel into it)."""
        self.subscriptions.by_bridge[bridge_id] = self

    def unwatch_bridge(self, bridge_id: str) -> None:
        if self.subscriptions.by_bridge.get(bridge_id) is self:
            del self.subscriptions.by_bridge[bridge_id]

    def deliver(self, event: Event) -> None:
        if channel_of(event) == self.id and event.get("type") in ENDED:
            self.hung_up = True
        if event.get("type") == "ChannelEnteredBridge" and (joined := channel_of(event)):
            # someone we did not bring joined our bridge: a transfer's replacement; its
            # state and end must reach us, whatever comes first
            if joined not in self.watched:
                self.watch(joined)
        if event.get("type") in TRANSFERS and (target := transfer_target(event)):
            # subscribe now, in the dispatcher: the target's next events may come before
            # this call's task has read this one
            self.watch(target)
        self.events.put_nowait(event)

    async def wait_for(self, accept: Callable[[Event], bool], timeout: float) -> Event:
        """The next event `accept` takes; raises CallEnded if the caller leaves first."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if accept(event):
                    return event
                if channel_of(event) == self.id and event.get("type") in ENDED:
                    raise CallEnded(self.id)
