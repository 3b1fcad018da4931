"""An ARI application that only watches: every channel and bridge event Asterisk reports.

Lab tests use it to see what Asterisk itself said (a BridgeBlindTransfer and its replace
channel, say) instead of trusting Caseline's account of it. It subscribes to every channel
and every bridge (`channel:` and `bridge:` with no id), Caseline's bridges included; it
never touches a channel it did not make, and the channels it originates land in it.

Not `subscribeAll=true`: that also subscribes the app to device states, and closing such an
app's websocket while a device state event is dispatched to it deadlocks ARI for good
(asterisk/asterisk#2170, seen here: every later ARI request hung, the suite's next tests
timed out one after the other).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from tests.support.eventually import eventually
from tests.support.lab import Lab

Event = dict[str, Any]


class AriObserver:
    def __init__(self, http: aiohttp.ClientSession, base: str, app: str) -> None:
        self.events: list[Event] = []
        self._http, self._base, self.app = http, base, app

    async def request(self, method: str, path: str, params: dict[str, str] | None = None,
                      body: dict[str, Any] | None = None) -> Any:
        async with self._http.request(method, self._base + path, params=params, json=body) as answer:
            answer.raise_for_status()
            return await answer.json() if answer.status != 204 else None

    async def originate(self, endpoint: str, channel_id: str, variables: dict[str, str],
                        timeout_s: int = 10) -> None:
        """A channel into this app; `variables` are set before Asterisk calls it (a Local
        channel's ;2 half inherits them, as from a transfer)."""
        await self.request("POST", "/channels", {"endpoint": endpoint, "app": self.app,
                                                 "channelId": channel_id, "timeout": str(timeout_s)},
                           {"variables": variables})

    def of_type(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.get("type") == kind]

    async def wait(self, kind: str, match: Callable[[Event], bool] = lambda e: True,
                   timeout: float = 15) -> Event:
        def seen() -> Event:
            found = [e for e in self.of_type(kind) if match(e)]
            assert found, f"no {kind} yet"
            return found[0]

        return await eventually(seen, timeout=timeout, message=f"ARI event {kind}")


def observing(lab: Lab, app: str = "caseline-observer") -> contextlib.AbstractAsyncContextManager[AriObserver]:
    return observing_ari(lab.ari_url, lab.secrets["CASELINE_ARI_PASSWORD"], app)


@contextlib.asynccontextmanager
async def observing_ari(ari_url: str, password: str,
                        app: str = "caseline-observer") -> AsyncIterator[AriObserver]:
    """The observer on any Asterisk's ARI (`ari_url`: http://host:port; user caseline), the
    docker kit's as well as the lab's."""
    base = ari_url.rstrip("/") + "/ari"

    async def pump(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                observer.events.append(json.loads(message.data))

    token = base64.b64encode(f"caseline:{password}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as http:
        observer = AriObserver(http, base, app)
        events = base.replace("http", "ws", 1) + "/events"
        async with http.ws_connect(events, params={"app": app, "subscribeAll": "false"}) as ws:
            task = asyncio.create_task(pump(ws))
            try:
                await observer.request("POST", f"/applications/{app}/subscription",
                                       {"eventSource": "channel:,bridge:"})
                yield observer
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
