"""ARI over aiohttp: REST calls plus the events websocket, behind `ari_app.ari.interface.Ari`.

Why our own thin client rather than aioari or asyncari: see README ("The ARI client").
In short, we need a bounded liveness check on the websocket, reconnects we control, one
shared connection pool, bounded waits on every request and typed errors (404 vs 409 vs down);
aioari (2020, swagger-loaded, untyped) has none of these and asyncari brings its own anyio
state-machine framework. The surface Caseline uses is ~20 documented endpoints.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from ari_app.ari.interface import (
    AriError,
    AriUnavailable,
    ChannelGone,
    Event,
    NotInStasis,
)

log = logging.getLogger("caseline.ari")

REQUEST_TIMEOUT_S = 5.0
CONNECTED = "CaselineConnected"
REST_RESPONSE = "RESTResponse"  # a request's answer on the events websocket (Asterisk 22.4+)
_CLOSED = object()  # the websocket reader's last word


class HttpAri:
    """One ARI application connection. Create with `async with HttpAri(...)`."""

    def __init__(self, base_url: str, user: str, password: str, app: str, *,
                 heartbeat_s: float = 5.0, request_timeout_s: float = REQUEST_TIMEOUT_S,
                 event_types: tuple[str, ...] = (), rest_over_websocket: bool = False) -> None:
        self.base = base_url.rstrip("/") + "/ari"
        self.app = app
        # a header, not aiohttp's BasicAuth (deprecated in aiohttp 3.14)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._heartbeat_s = heartbeat_s
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self._event_types = event_types
        self._session: aiohttp.ClientSession | None = None
        # ARI REST over the events websocket (docs.asterisk.org, "ARI REST over WebSocket"):
        # a request is one small frame on a connection we already hold instead of an HTTP
        # exchange: less work per request on both sides (docs/benchmarks.md, issue 22)
        self._rest_over_websocket = rest_over_websocket
        self._ws: aiohttp.ClientWebSocketResponse | None = None  # set once requests may use it
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._request_ids = 0
        # each request's duration, errors and timeouts included (admission control, ops/load.py)
        self.on_latency: Callable[[float], None] | None = None

    async def __aenter__(self) -> HttpAri:
        # well under Asterisk's HTTP session limit (http.conf sessionlimit), which refuses
        # every request beyond it: a burst of hang-ups must queue here, not fail there
        connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=5)
        self._session = aiohttp.ClientSession(headers=self._headers, connector=connector,
                                              timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session:
            await self._session.close()

    # --- transport -------------------------------------------------------------------

    async def _request(self, method: str, path: str, params: Mapping[str, str] | None = None,
                       body: Mapping[str, Any] | None = None) -> Any:
        return (await self._exchange(method, path, params, body))[1]

    async def _exchange(self, method: str, path: str, params: Mapping[str, str] | None = None,
                        body: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        """(status, JSON body or None); an error status raises its AriError."""
        assert self._session is not None, "use `async with HttpAri(...)`"
        started = time.monotonic()
        try:
            if self._ws is not None:
                return await self._ws_exchange(self._ws, method, path, params, body)
            async with self._session.request(method, self.base + path, params=params,
                                             json=body) as answer:
                text = await answer.text()
                if answer.status >= 400:
                    raise _error(answer.status, f"{method} {path.split('?')[0]}: " + _message(text))
                return answer.status, orjson.loads(text) if text else None
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError) as e:
            raise AriUnavailable(f"{method} {path}: {type(e).__name__}") from e
        finally:
            if self.on_latency is not None:
                self.on_latency(time.monotonic() - started)

    async def _ws_exchange(self, ws: aiohttp.ClientWebSocketResponse, method: str, path: str,
                           params: Mapping[str, str] | None,
                           body: Mapping[str, Any] | None) -> tuple[int, Any]:
        """One request as a `RESTRequest` frame; its `RESTResponse` comes back among the events."""
        self._request_ids += 1
        request_id = str(self._request_ids)
        uri = path.lstrip("/") + ("?" + urlencode(params) if params else "")
        request: dict[str, Any] = {"type": "RESTRequest", "request_id": request_id,
                                   "method": method, "uri": uri}
        if body is not None:
            request["content_type"] = "application/json"
            request["message_body"] = orjson.dumps(body).decode()
        answer = self._answers[request_id] = asyncio.get_running_loop().create_future()
        try:
            await ws.send_str(orjson.dumps(request).decode())
            async with asyncio.timeout(self._timeout.total):
                response = await answer
        except TimeoutError as e:
            raise AriUnavailable(f"{method} {path}: no answer on the websocket") from e
        except ConnectionError as e:
            raise AriUnavailable(f"{method} {path}: {type(e).__name__}") from e
        finally:
            self._answers.pop(request_id, None)
        status = int(response.get("status_code") or 0)
        text = response.get("message_body") or ""
        if status >= 400:
            raise _error(status, f"{method} {path.split('?')[0]}: " + _message(text))
        return status, orjson.loads(text) if text else None

    async def events(self) -> AsyncIterator[Event]:
        """Events for our app until the websocket closes or stops answering pings.

        aiohttp's heartbeat pings every `heartbeat_s` and closes the socket when no pong
        comes back within half of it: a silently dead connection ends this iterator.

        A reader task owns the socket, so that a request sent over it is answered even while
        our consumer is busy awaiting that very request (the resync after a reconnect).
        """
        assert self._session is not None
        ws_url = self.base.replace("http", "ws", 1) + "/events"
        params = {"app": self.app, "subscribeAll": "false"}
        try:
            ws = await self._session.ws_connect(ws_url, params=params, heartbeat=self._heartbeat_s,
                                                timeout=aiohttp.ClientWSTimeout(ws_receive=None))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise AriUnavailable(f"events websocket: {type(e).__name__}: {e}") from e
        queue: asyncio.Queue[Any] = asyncio.Queue()
        reader = asyncio.create_task(self._read(ws, queue), name="ari-events-reader")
        try:
            async with ws:
                if self._event_types:
                    await self._filter_events()
                if self._rest_over_websocket:
                    self._ws = ws
                yield {"type": CONNECTED}  # ours, not Asterisk's: the app is registered and active
                while (event := await queue.get()) is not _CLOSED:
                    yield event
        finally:
            reader.cancel()
            self._forget(ws)
        raise AriUnavailable(f"events websocket closed (code {ws.close_code})")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, queue: asyncio.Queue[Any]) -> None:
        try:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    try:
                        event = orjson.loads(message.data)  # ~3x json's speed: every event, every answer
                    except ValueError:
                        log.warning("ARI sent a non-JSON event (%d bytes)", len(message.data))
                        continue
                    if not isinstance(event, dict):
                        continue
                    if event.get("type") == REST_RESPONSE:
                        answer = self._answers.get(str(event.get("request_id")))
                        if answer is not None and not answer.done():
                            answer.set_result(event)
                        continue
                    queue.put_nowait(event)
                elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                    break
        finally:
            self._forget(ws)
            queue.put_nowait(_CLOSED)

    def _forget(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The websocket is gone: requests go over HTTP again, and those waiting on it fail now
        (not at their timeout: the caller may be the one who would read the next event)."""
        if self._ws is ws:
            self._ws = None
        for answer in self._answers.values():
            if not answer.done():
                answer.set_exception(ConnectionResetError("events websocket closed"))

    async def _filter_events(self) -> None:
        """Ask Asterisk to send only the event types we act on (less JSON per call)."""
        allowed = [{"type": t} for t in (*self._event_types, REST_RESPONSE)]
        await self._request("PUT", f"/applications/{quote(self.app)}/eventFilter",
                            body={"allowed": allowed})

    # --- channels ----------------------------------------------------------------------

    async def answer(self, channel_id: str) -> None:
        await self._request("POST", f"/channels/{quote(channel_id)}/answer")

    async def ring(self, channel_id: str) -> None:
        await self._request("POST", f"/channels/{quote(channel_id)}/ring")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self._request("DELETE", f"/channels/{quote(channel_id)}", {"reason": reason})

    async def play(self, channel_id: str, media: str, playback_id: str | None = None) -> str:
        params = {"media": media}
        if playback_id:
            params["playbackId"] = playback_id
        answer = await self._request("POST", f"/channels/{quote(channel_id)}/play", params)
        return str(answer.get("id", playback_id or "")) if isinstance(answer, dict) else ""

    async def stop_playback(self, playback_id: str) -> None:
        await self._request("DELETE", f"/playbacks/{quote(playback_id)}")

    async def start_music(self, channel_id: str, music_class: str) -> None:
        await self._request("POST", f"/channels/{quote(channel_id)}/moh", {"mohClass": music_class})

    async def stop_music(self, channel_id: str) -> None:
        await self._request("DELETE", f"/channels/{quote(channel_id)}/moh")

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        await self._request("POST", f"/channels/{quote(channel_id)}/variable",
                            {"variable": name, "value": value})

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        """A variable or dialplan function of the channel; None when it is not set."""
        try:
            answer = await self._request("GET", f"/channels/{quote(channel_id)}/variable",
                                         {"variable": name})
        except ChannelGone as e:
            if "variable" in str(e).lower():  # 404 "Variable Not Found"; else the channel is gone
                return None
            raise
        return str(answer.get("value", "")) if isinstance(answer, dict) else None

    async def set_global(self, name: str, value: str) -> None:
        """A dialplan global variable (`POST /asterisk/variable` without a channel)."""
        await self._request("POST", "/asterisk/variable", {"variable": name, "value": value})

    async def create_channel(self, endpoint: str, *, channel_id: str, app_args: str,
                             originator: str | None = None,
                             variables: Mapping[str, str] | None = None) -> None:
        params = {"endpoint": endpoint, "app": self.app, "appArgs": app_args,
                  "channelId": channel_id}
        if originator:
            params["originator"] = originator
        await self._request("POST", "/channels/create", params,
                            {"variables": dict(variables or {})})

    async def dial(self, channel_id: str, timeout_s: int, caller: str | None = None) -> None:
        params = {"timeout": str(timeout_s)}
        if caller:
            params["caller"] = caller  # the dialled phone shows this channel's caller ID
        await self._request("POST", f"/channels/{quote(channel_id)}/dial", params)

    async def continue_in_dialplan(self, channel_id: str, context: str, extension: str = "s",
                                   priority: int = 1) -> None:
        await self._request("POST", f"/channels/{quote(channel_id)}/continue",
                            {"context": context, "extension": extension, "priority": str(priority)})

    async def channels(self) -> list[dict[str, Any]]:
        return list(await self._request("GET", "/channels") or [])

    # --- bridges, endpoints, system ----------------------------------------------------

    async def create_bridge(self, bridge_id: str) -> None:
        await self._request("POST", f"/bridges/{quote(bridge_id)}",
                            {"type": "mixing", "name": bridge_id})

    async def add_to_bridge(self, bridge_id: str, channel_ids: list[str]) -> None:
        await self._request("POST", f"/bridges/{quote(bridge_id)}/addChannel",
                            {"channel": ",".join(channel_ids)})

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self._request("DELETE", f"/bridges/{quote(bridge_id)}")

    async def bridges(self) -> list[dict[str, Any]]:
        return list(await self._request("GET", "/bridges") or [])

    async def endpoint(self, endpoint: str) -> dict[str, Any]:
        """{"state": "online"|"offline"|"unknown", "channel_ids": [...], ...}"""
        tech, _, resource = endpoint.partition("/")
        answer = await self._request("GET", f"/endpoints/{quote(tech)}/{quote(resource)}")
        return dict(answer) if isinstance(answer, dict) else {}

    async def endpoints(self) -> list[dict[str, Any]]:
        """Every endpoint Asterisk knows: [{"technology", "resource", "state", "channel_ids"}, ...]"""
        return list(await self._request("GET", "/endpoints") or [])

    async def application(self) -> dict[str, Any]:
        return dict(await self._request("GET", f"/applications/{quote(self.app)}") or {})

    async def subscribe(self, event_source: str) -> None:
        """Our app hears `event_source` ("endpoint:PJSIP": every PJSIP endpoint) from now on.
        Asterisk keeps it until the app is destroyed; after a restart it must be asked again."""
        await self._request("POST", f"/applications/{quote(self.app)}/subscription",
                            {"eventSource": event_source})

    async def asterisk_info(self) -> dict[str, Any]:
        """{"system": {"version": "22.10.1", "entity_id": ...}} (only the system part)."""
        answer = await self._request("GET", "/asterisk/info", {"only": "system"})
        return dict(answer) if isinstance(answer, dict) else {}

    async def reload_module(self, module: str) -> bool:
        """PUT /asterisk/modules/{module}: True when reloaded (204), False when Asterisk
        queued it until it is fully booted (202). 404: not loaded; 409: refused, or another
        reload in progress (the message says which)."""
        status, _ = await self._exchange("PUT", f"/asterisk/modules/{quote(module)}")
        return status != 202


def _message(body: str) -> str:
    try:
        return str(json.loads(body).get("message", ""))[:200]
    except (ValueError, AttributeError):
        return body[:200]


def _error(status: int, message: str) -> AriError:
    if status == 404:
        return ChannelGone(status, message)
    if status in (409, 422) and "stasis" in message.lower():
        return NotInStasis(status, message)
    if status == 503:
        return AriError(status, message or "Asterisk not booted")
    return AriError(status, message)
