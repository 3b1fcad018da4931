"""The data routes the console uses, on the ops API and behind its token like the rest:

- GET /events/calls: live calls as server-sent events: a `snapshot` of the calls in
  progress at once, then `decided` / `ended` as calls are decided and end, each followed
  by a fresh snapshot; a step change (ringing the next person) shows within REFRESH_S.
- GET /decisions?number=&class=&service=&outcome=&since=&until=&limit=: the decision log.
- GET /stats?hours=24: calls per hour by class and service, fallbacks, sheds.
- GET /explain?number=&at=: `caseline explain --json` for a number, now or at a moment.
- GET /routing, POST /routing/check, POST /routing/apply: the routing file (routing_edit).

What each route reads is injected (ConsoleHooks; ari_app.main wires the real ones).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ari_app.ops.decision_query import BadQuery, DecisionQuery, entry_json
from ari_app.ops.http_body import read_capped
from ari_app.ops.live_events import Dropped, LiveFeed, TooManySubscribers
from ari_app.ops.routing_edit import RoutingEditor
from ari_app.ops.stats import hourly, window_start

log = logging.getLogger("caseline.ops.console")

REFRESH_S = 1.0  # how often an open stream looks for step changes
KEEPALIVE_S = 15.0  # a comment line on a quiet stream, so proxies and the browser keep it
MAX_ROUTING_BODY = 256 * 1024  # as POST /replay
MAX_STATS_HOURS = 7 * 24

Entries = list[Mapping[str, str]]


@dataclass(frozen=True)
class ConsoleHooks:
    feed: LiveFeed
    decisions: Callable[[DecisionQuery], Awaitable[Entries]]  # matching entries, newest first
    entries_since: Callable[[datetime], Awaitable[Entries]]  # decision-log entries since then
    # explain(number, at or None) -> explain --json; a naive `at` is the company's wall time
    explain: Callable[[str, datetime | None], Awaitable[Mapping[str, Any]]]
    routing: RoutingEditor | None = None


CONSOLE = web.AppKey("console", ConsoleHooks)
_LIVE = web.AppKey("console_live_calls", object)


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, default=str))


async def _live_now(request: web.Request) -> list[dict[str, Any]]:
    live_calls: Any = request.app[_LIVE]
    try:
        calls = live_calls()
        if hasattr(calls, "__await__"):
            calls = await calls
        calls = [c for c in calls if isinstance(c, Mapping)]
    except Exception:
        log.exception("live_calls failed")
        calls = []
    return request.app[CONSOLE].feed.view(calls)


def _sse(kind: str, data: object) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()


async def _events_calls(request: web.Request) -> web.StreamResponse:
    feed = request.app[CONSOLE].feed
    try:
        subscription = feed.subscribe()
    except TooManySubscribers:
        return _json({"error": "too many open event streams"}, 503)
    with subscription:
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no"})
        await response.prepare(request)
        last: list[dict[str, Any]] | None = None
        quiet = 0.0
        try:
            while True:
                events: list[dict[str, Any]] = []
                if last is not None:  # the first snapshot goes out at once
                    try:
                        event = await subscription.next(REFRESH_S)
                    except Dropped:
                        break
                    if event is not None:
                        events = [event, *subscription.drain()]
                for event in events:
                    await response.write(_sse(event["type"], event))
                calls = await _live_now(request)
                if events or calls != last:
                    await response.write(_sse("snapshot", {"calls": calls, "now": feed.clock()}))
                    last, quiet = calls, 0.0
                else:
                    quiet += REFRESH_S
                    if quiet >= KEEPALIVE_S:
                        await response.write(b": keepalive\n\n")
                        quiet = 0.0
        except (ConnectionError, RuntimeError):  # the browser went away (RuntimeError: closing transport)
            pass
    return response


async def _decisions(request: web.Request) -> web.Response:
    try:
        query = DecisionQuery.from_params(request.query)
    except BadQuery as e:
        return _json({"error": str(e)}, 400)
    try:
        entries = await request.app[CONSOLE].decisions(query)
    except Exception:
        log.exception("decision log search failed")
        return _json({"error": "internal error (see the log)"}, 500)
    return _json({"entries": [entry_json(e) for e in entries], "count": len(entries),
                  "limit": query.limit})


async def _stats(request: web.Request) -> web.Response:
    try:
        hours = int(request.query.get("hours", "24"))
    except ValueError:
        return _json({"error": "hours: not a number"}, 400)
    if not 1 <= hours <= MAX_STATS_HOURS:
        return _json({"error": f"hours: 1 to {MAX_STATS_HOURS}"}, 400)
    now = datetime.now(UTC)
    try:
        entries = await request.app[CONSOLE].entries_since(window_start(now, hours))
    except Exception:
        log.exception("stats failed")
        return _json({"error": "internal error (see the log)"}, 500)
    return _json(hourly(entries, now, hours))


async def _explain(request: web.Request) -> web.Response:
    number = request.query.get("number", "").strip()
    if not number or len(number) > 64 or not number.isprintable():
        return _json({"error": "number: give a phone number (up to 64 characters)"}, 400)
    at = None
    if request.query.get("at", "").strip():
        text = request.query["at"].strip()
        try:
            at = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return _json({"error": f"at: {text[:40]!r} is not ISO 8601 (2026-06-15T12:00:00+03:00)"}, 400)
    try:
        data = await request.app[CONSOLE].explain(number, at)
    except Exception:
        log.exception("explain failed")
        return _json({"error": "internal error (see the log)"}, 500)
    return _json(dict(data))


def _editor(request: web.Request) -> RoutingEditor | None:
    return request.app[CONSOLE].routing


async def _read_body(request: web.Request) -> bytes | None:
    """The body, or None when it is longer than MAX_ROUTING_BODY."""
    return await read_capped(request, MAX_ROUTING_BODY)


async def _routing(request: web.Request) -> web.Response:
    editor = _editor(request)
    if editor is None:
        return _json({"error": "routing is not available"}, 404)
    try:
        return _json(editor.running())
    except OSError as e:
        return _json({"error": f"cannot read the routing file: {e.strerror or e}"}, 500)


async def _routing_check(request: web.Request) -> web.Response:
    editor = _editor(request)
    if editor is None:
        return _json({"error": "routing is not available"}, 404)
    body = await _read_body(request)
    if body is None:
        return _json({"error": f"candidate larger than {MAX_ROUTING_BODY} bytes"}, 413)
    problems = await editor.check(body)
    return _json({"ok": not problems, "problems": problems})


async def _routing_apply(request: web.Request) -> web.Response:
    editor = _editor(request)
    if editor is None:
        return _json({"error": "routing is not available"}, 404)
    body = await _read_body(request)
    if body is None:
        return _json({"error": f"candidate larger than {MAX_ROUTING_BODY} bytes"}, 413)
    try:
        applied, answer = await editor.apply(body)
    except Exception:
        log.exception("routing apply failed")
        return _json({"ok": False, "error": "internal error (see the log)"}, 500)
    if applied:
        log.info("routing.yaml replaced from the ops API and reloaded")
    return _json(answer, 200 if applied else 400)


def add_console_routes(app: web.Application, hooks: ConsoleHooks, live_calls: object) -> None:
    app[CONSOLE] = hooks
    app[_LIVE] = live_calls
    app.on_shutdown.append(_close_streams)
    app.router.add_get("/events/calls", _events_calls, allow_head=False)  # a HEAD would stream on
    app.router.add_get("/decisions", _decisions)
    app.router.add_get("/stats", _stats)
    app.router.add_get("/explain", _explain)
    app.router.add_get("/routing", _routing)
    app.router.add_post("/routing/check", _routing_check)
    app.router.add_post("/routing/apply", _routing_apply)


async def _close_streams(app: web.Application) -> None:
    app[CONSOLE].feed.close()  # open streams end, so shutdown does not wait for them
