"""ARI REST over the events websocket, against an in-process websocket server that stands in
for Asterisk where the lab cannot be made to misbehave: an answer that never comes, a socket
that drops with requests in flight."""
from __future__ import annotations

import asyncio
import json

from aiohttp import WSMsgType, web

from ari_app.ari.http import CONNECTED, HttpAri
from ari_app.ari.interface import AriUnavailable, ChannelGone


async def serve(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/ari/events", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def test_answers_are_matched_to_their_requests_by_id_in_any_order() -> None:
    async def asterisk(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        held = []
        async for message in ws:
            held.append(json.loads(message.data))
            if len(held) == 2:  # answer the second first, with a 404 for one of them
                for req, status, body in ((held[1], 404, '{"message": "Channel not found"}'),
                                          (held[0], 200, '[{"id": "c1"}]')):
                    await ws.send_str(json.dumps({"type": "RESTResponse", "request_id": req["request_id"],
                                                  "status_code": status, "message_body": body}))
                await ws.send_str(json.dumps({"type": "StasisStart", "channel": {"id": "c1"}}))
        return ws

    runner, url = await serve(asterisk)
    try:
        async with HttpAri(url, "u", "p", "app", rest_over_websocket=True) as ari:
            events = ari.events()
            assert (await anext(events))["type"] == CONNECTED
            listing = asyncio.create_task(ari.channels())
            hangup = asyncio.create_task(ari.hangup("c2"))
            assert (await anext(events))["type"] == "StasisStart"  # answers are not events
            assert await listing == [{"id": "c1"}]
            try:
                await hangup
            except ChannelGone:
                pass
            else:
                raise AssertionError("a 404 over the websocket must raise ChannelGone")
            await events.aclose()
    finally:
        await runner.cleanup()


async def test_requests_in_flight_fail_at_once_when_the_websocket_drops() -> None:
    got_request = asyncio.Event()

    async def asterisk(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                got_request.set()
                await ws.close()  # never answers
        return ws

    runner, url = await serve(asterisk)
    try:
        # a request timeout far longer than the test's own: failing at once is the point
        async with HttpAri(url, "u", "p", "app", rest_over_websocket=True, request_timeout_s=60) as ari:
            events = ari.events()
            assert (await anext(events))["type"] == CONNECTED
            pending = asyncio.create_task(ari.channels())
            async with asyncio.timeout(5):
                await got_request.wait()
                try:
                    await pending
                except AriUnavailable:
                    pass
                else:
                    raise AssertionError("a request whose socket dropped must fail")
                try:
                    await anext(events)
                except AriUnavailable:
                    pass
            assert ari._ws is None  # later requests go over HTTP again
    finally:
        await runner.cleanup()
