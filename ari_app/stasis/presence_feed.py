"""Keeps this node's part of the shared presence (stasis/shared_presence.py) fresh from its
own Asterisk: a snapshot of GET /endpoints at every (re)connect, then each
EndpointStateChange (an endpoint's state and channel_ids, sent when a phone registers or
unregisters and whenever a channel is added to or removed from it).

It listens as an ARI application of its own (`<app>-presence`), not as the call app:
subscribing an app to `endpoint:PJSIP` forwards the technology's whole topic to it, every
PJSIP channel's events included (res/stasis/app.c forwards_create_endpoint, main/endpoints.c
tech_forward). On the call app that would bring each caller's and each leg's channel
events a second time (once through the channel's own subscription) and every unrelated
call's besides; on this app they are dropped by its event filter, which lets only
EndpointStateChange (and ApplicationReplaced) through. Never `subscribeAll=true`: it can
deadlock Asterisk when the websocket closes (asterisk/asterisk#2170).
"""
from __future__ import annotations

import asyncio
import logging
import random
from contextlib import aclosing

from ari_app.ari.http import CONNECTED
from ari_app.ari.interface import Ari, AriError, AriUnavailable
from ari_app.stasis.shared_presence import SharedPresence

log = logging.getLogger("caseline.stasis.presence_feed")

# what the presence app's event filter lets through (HttpAri's event_types)
EVENT_TYPES = ("EndpointStateChange", "ApplicationReplaced")


class PresenceFeed:
    def __init__(self, ari: Ari, registry: SharedPresence, *, technology: str = "PJSIP",
                 backoff_cap_s: float = 10.0) -> None:
        self.ari = ari  # connected as the presence app, filtered to EVENT_TYPES
        self.registry = registry
        self.technology = technology
        self.backoff_cap_s = backoff_cap_s
        self.connected = asyncio.Event()  # subscribed and the snapshot taken

    async def run(self) -> None:
        """Feed until cancelled, or until another process takes the presence app over."""
        attempt = 0
        while True:
            try:
                # closed at once on the way out: a subscribe that fails must not leave the
                # websocket open until the generator is collected
                async with aclosing(self.ari.events()) as events:
                    async for event in events:
                        kind = event.get("type")
                        if kind == CONNECTED:
                            await self._snapshot()
                            attempt = 0
                        elif kind == "EndpointStateChange":
                            self.registry.update(event.get("endpoint") or {})
                        elif kind == "ApplicationReplaced":
                            # another Caseline serves this node now: it feeds, this one must not
                            log.warning("presence feed: another process owns the presence app")
                            self._lost()
                            return
            except (AriUnavailable, AriError) as e:
                self._lost()
                attempt += 1
                delay = min(self.backoff_cap_s, 0.2 * 2 ** min(attempt, 10)) * random.uniform(0.5, 1.0)
                log.warning("presence feed: ARI events lost (%s); reconnecting in %.2f s", e, delay)
                await asyncio.sleep(delay)

    async def _snapshot(self) -> None:
        """Subscribe first, then read: a change in between comes as an event after the
        snapshot, and events are applied in order, so the last word is the newest."""
        await self.ari.subscribe(f"endpoint:{self.technology}")
        endpoints = await self.ari.endpoints()
        self.registry.replace_all(e for e in endpoints if e.get("technology") == self.technology)
        self.connected.set()
        log.info("presence feed: %d %s endpoints of node %s", len(self.registry.local),
                 self.technology, self.registry.node)

    def _lost(self) -> None:
        self.connected.clear()
        self.registry.lost()
