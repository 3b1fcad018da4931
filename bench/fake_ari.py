"""A stand-in for Asterisk's ARI, for benchmarks only: REST + events websocket over HTTP.

Run it in its own process (`python bench/fake_ari.py --port N`) so that its CPU is not
counted as Caseline's. It answers the ~20 endpoints Caseline uses and sends the events
Asterisk would send, immediately:

- `POST /bench/calls {"calls": [{"id", "number"}...], "concurrency": C, "hold": bool}`
  offers the calls as StasisStart events, at most C at a time (with hold, at most 50 of
  them not yet bridged); a call is finished when Caseline hangs up the caller or
  continues it in the dialplan.
- every dialled person answers at once (Dial ANSWER); after the bridge the person hangs
  up at once, or, with `"hold": true`, only on `POST /bench/release`.
- a playback is interrupted by the digit 0 (so an IVR menu picks "0"), then finishes.
- `GET /bench/status`: offered, finished, in bridges, REST requests and events sent.

It is not a test double for correctness (tests/lab runs the real Asterisk); event
payloads follow Asterisk 22's shapes so that JSON sizes are realistic.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import deque
from typing import Any

from aiohttp import WSMsgType, web

ASTERISK_ID = "52:54:00:12:34:56"
SETUP_WINDOW = 50  # hold mode: calls being set up at once


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())


def channel_json(channel_id: str, number: str, *, name: str, state: str = "Ring",
                 app_data: str = "caseline,inbound", context: str = "inbound") -> dict[str, Any]:
    return {
        "id": channel_id, "name": name, "state": state, "protocol_id": f"{channel_id}@127.0.0.2",
        "caller": {"name": "", "number": number}, "connected": {"name": "", "number": ""},
        "accountcode": "",
        "dialplan": {"context": context, "exten": "s", "priority": 2, "app_name": "Stasis",
                     "app_data": app_data},
        "creationtime": _now(), "language": "en", "caller_rdnis": "",
    }


class FakeAri:
    def __init__(self, app_name: str = "caseline") -> None:
        self.app_name = app_name
        self.ws: web.WebSocketResponse | None = None
        self.pending: deque[dict[str, str]] = deque()
        self.concurrency = 1
        self.hold = False
        self.active: set[str] = set()
        self.numbers: dict[str, str] = {}
        self.held_legs: list[str] = []
        self.legs: set[str] = set()
        self.stats = {"offered": 0, "finished": 0, "requests": 0, "events": 0}
        self.seq = 0

    # --- events -------------------------------------------------------------------------

    async def emit(self, event: dict[str, Any]) -> None:
        if self.ws is None or self.ws.closed:
            return
        event.setdefault("timestamp", _now())
        event.setdefault("asterisk_id", ASTERISK_ID)
        event.setdefault("application", self.app_name)
        self.stats["events"] += 1
        await self.ws.send_str(json.dumps(event))

    def in_setup(self) -> int:
        """Calls offered and not yet held in a bridge (hold mode)."""
        return len(self.active) - len(self.held_legs)

    async def offer_more(self) -> None:
        # In hold mode calls arrive as they would: at most SETUP_WINDOW being set up at
        # once (5000 StasisStarts in one burst would only measure timeouts).
        while (self.pending and len(self.active) < self.concurrency
               and (not self.hold or self.in_setup() < SETUP_WINDOW)):
            call = self.pending.popleft()
            self.active.add(call["id"])
            self.numbers[call["id"]] = call["number"]
            self.stats["offered"] += 1
            await self.emit({"type": "StasisStart", "args": ["inbound"],
                             "channel": channel_json(call["id"], call["number"],
                                                     name=f"PJSIP/trunk-{self.stats['offered']:08x}")})

    async def finish(self, channel_id: str, *, continued: bool) -> None:
        if channel_id not in self.active:
            return
        self.active.discard(channel_id)
        self.stats["finished"] += 1
        number = self.numbers.pop(channel_id, "")
        ch = channel_json(channel_id, number, name="PJSIP/trunk", state="Up")
        await self.emit({"type": "StasisEnd", "channel": ch})
        if not continued:
            await self.emit({"type": "ChannelDestroyed", "cause": 16, "cause_txt": "Normal Clearing",
                             "channel": ch})
        await self.offer_more()

    async def leg_gone(self, leg: str) -> None:
        if leg not in self.legs:
            return
        self.legs.discard(leg)
        ch = channel_json(leg, "", name="PJSIP/mgr", state="Up", app_data="caseline,leg", context="internal")
        await self.emit({"type": "StasisEnd", "channel": ch})
        await self.emit({"type": "ChannelDestroyed", "cause": 16, "cause_txt": "Normal Clearing", "channel": ch})

    # --- HTTP ---------------------------------------------------------------------------

    @web.middleware
    async def count(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        if request.path.startswith("/ari/"):
            self.stats["requests"] += 1
        return await handler(request)

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.ws = ws
        async for message in ws:
            if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                break
        return ws

    async def rest(self, request: web.Request) -> web.Response:
        method, parts, q = request.method, request.path.split("/")[2:], request.query
        if request.can_read_body:
            await request.read()
        head = parts[0] if parts else ""
        if head == "applications":
            if parts[-1] == "eventFilter":
                return web.json_response({})
            return web.json_response({"name": self.app_name, "channel_ids": [], "bridge_ids": [],
                                      "endpoint_ids": [], "device_names": []})
        if head == "endpoints":
            return web.json_response({"technology": parts[1], "resource": parts[2], "state": "online",
                                      "channel_ids": []})
        if head in ("channels", "bridges") and method == "GET" and len(parts) == 1:
            return web.json_response([])
        if head == "asterisk":
            return web.json_response({"system": {"version": "22.0.0-fake"}})
        if head == "playbacks":
            return web.Response(status=204)
        if head == "bridges":
            if method == "POST" and len(parts) == 2:
                return web.json_response({"id": parts[1], "technology": "simple_bridge", "bridge_type": "mixing",
                                          "channels": [], "creationtime": _now()})
            if parts[-1] == "addChannel":
                legs = [c for c in q.get("channel", "").split(",") if c in self.legs]
                for leg in legs:
                    if self.hold:
                        self.held_legs.append(leg)
                    else:
                        await self.leg_gone(leg)
                if self.hold and legs:
                    await self.offer_more()
            return web.Response(status=204)
        if head == "channels":
            if method == "POST" and parts[-1] == "create":
                leg = q["channelId"]
                self.legs.add(leg)
                ch = channel_json(leg, "", name=f"{q.get('endpoint')}-{leg[-6:]}", state="Down",
                                  app_data=f"caseline,{q.get('appArgs', '')}", context="internal")
                await self.emit({"type": "StasisStart", "args": q.get("appArgs", "").split(","), "channel": ch})
                return web.json_response(ch)
            channel = parts[1] if len(parts) > 1 else ""
            action = parts[2] if len(parts) > 2 else ""
            if method == "DELETE" and not action:
                if channel in self.active:
                    await self.finish(channel, continued=False)
                    return web.Response(status=204)
                if channel in self.legs:
                    await self.leg_gone(channel)
                    return web.Response(status=204)
                return web.json_response({"message": "Channel not found"}, status=404)
            if action == "dial":
                ch = channel_json(channel, "", name="PJSIP/mgr", state="Up", app_data="caseline,leg",
                                  context="internal")
                for status in ("", "RINGING", "ANSWER"):
                    await self.emit({"type": "Dial", "dialstatus": status, "peer": ch,
                                     "caller": {"id": q.get("caller", "")}})
                return web.Response(status=204)
            if action == "continue":
                await self.finish(channel, continued=True)
                return web.Response(status=204)
            if action == "play":
                playback = q.get("playbackId") or f"pb-{self.seq}"
                self.seq += 1
                body = {"id": playback, "media_uri": q.get("media", ""), "target_uri": f"channel:{channel}",
                        "language": "en", "state": "queued"}
                await self.emit({"type": "ChannelDtmfReceived", "digit": "0", "duration_ms": 100,
                                 "channel": channel_json(channel, "", name="PJSIP/trunk", state="Up")})
                await self.emit({"type": "PlaybackFinished", "playback": {**body, "state": "done"}})
                return web.json_response(body, status=201)
            return web.Response(status=204)  # answer, ring, moh, variable, ...
        return web.json_response({"message": "not found"}, status=404)

    # --- control ------------------------------------------------------------------------

    async def calls(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.concurrency = int(body.get("concurrency", 1))
        self.hold = bool(body.get("hold", False))
        self.pending.extend(body["calls"])
        await self.offer_more()
        return web.json_response({"queued": len(self.pending)})

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({**self.stats, "active": len(self.active), "pending": len(self.pending),
                                  "held": len(self.held_legs)})

    async def release(self, request: web.Request) -> web.Response:
        legs, self.held_legs = self.held_legs, []
        self.hold = False
        for leg in legs:
            await self.leg_gone(leg)
        return web.json_response({"released": len(legs)})

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.count])
        app.router.add_get("/ari/events", self.events)
        app.router.add_post("/bench/calls", self.calls)
        app.router.add_get("/bench/status", self.status)
        app.router.add_post("/bench/release", self.release)
        app.router.add_route("*", "/ari/{tail:.*}", self.rest)
        return app


async def serve(port: int) -> None:
    runner = web.AppRunner(FakeAri().app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"fake ARI ready on 127.0.0.1:{port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
