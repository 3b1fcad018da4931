"""Callback requests on the ops API, behind the bearer token like the rest (ops/api.py):

  GET  /callbacks[?status=open&limit=100]  the newest requests: {"callbacks": [...], "count"}
  POST /callbacks {"number", "reason"?}    file one (a website's "call me back" form): 201
                                           {"created": true, "callback"}; 200 with
                                           "created": false when the number has an open one;
                                           400 when the number is not a phone number
  POST /callbacks/{id}/dial                place it now, whatever the hour: 202, 404, 409, 503

What the routes act on is injected (ari_app.main wires the store, the router and the
dialler), so this module knows nothing of Redis or ARI.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger("caseline.ops.callbacks")

STATUSES = frozenset({"open", "dialling", "done", "failed", "expired"})
MAX_LIMIT = 1000
MAX_REASON = 200
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,40}", re.ASCII)


@dataclass(frozen=True)
class CallbackHooks:
    # listing(limit) -> requests as JSON-ready mappings, newest first
    listing: Callable[[int], Awaitable[list[Mapping[str, Any]]]]
    # file(number, reason) -> {"ok": False, "error"} or {"ok": True, "created": bool, "callback"}
    file: Callable[[str, str], Awaitable[Mapping[str, Any]]]
    # dial(id) -> (HTTP status, answer); None: no dialler in this process
    dial: Callable[[str], Awaitable[tuple[int, Mapping[str, Any]]]] | None = None


_HOOKS = web.AppKey("callback_hooks", CallbackHooks)


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, default=str))


def _text(value: object, limit: int) -> str | None:
    """A printable string of at most `limit` characters, stripped; None otherwise."""
    if not isinstance(value, str) or not value.isprintable() or len(value) > limit:
        return None
    return value.strip()


async def _list(request: web.Request) -> web.Response:
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        return _json({"error": f"status: one of {', '.join(sorted(STATUSES))}"}, 400)
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        return _json({"error": f"limit: 1..{MAX_LIMIT}"}, 400)
    try:
        found = await request.app[_HOOKS].listing(limit)
    except Exception:
        log.exception("listing callback requests failed")
        return _json({"error": "internal error (see the log)"}, 500)
    shown = [c for c in found if status is None or c.get("status") == status]
    return _json({"callbacks": shown, "count": len(shown)})


async def _file(request: web.Request) -> web.Response:
    try:
        body = await request.json(loads=json.loads)
    except (ValueError, LookupError, RecursionError):  # as in ops/api.py's _crm_invalidate
        return _json({"error": "body is not valid JSON"}, 400)
    usage = 'expected {"number": "+7...", "reason": "..."} (reason optional)'
    if not isinstance(body, dict) or not set(body) <= {"number", "reason"}:
        return _json({"error": usage}, 400)
    number = _text(body.get("number"), 64)
    reason = _text(body.get("reason", ""), MAX_REASON)
    if not number or reason is None:
        return _json({"error": usage}, 400)
    try:
        result = await request.app[_HOOKS].file(number, reason)
    except Exception:
        log.exception("filing a callback request failed")
        return _json({"ok": False, "error": "internal error (see the log)"}, 500)
    if not result.get("ok"):
        return _json({"ok": False, "error": str(result.get("error") or "refused")[:200]}, 400)
    return _json(dict(result), 201 if result.get("created") else 200)


async def _dial(request: web.Request) -> web.Response:
    request_id = request.match_info["id"]
    hook = request.app[_HOOKS].dial
    if not _ID_RE.fullmatch(request_id):
        return _json({"error": "no such callback request"}, 404)
    if hook is None:
        return _json({"error": "no callback dialler in this process"}, 503)
    try:
        status, answer = await hook(request_id)
    except Exception:
        log.exception("dialling callback request %s failed", request_id)
        return _json({"error": "internal error (see the log)"}, 500)
    return _json(dict(answer), status)


def add_callback_routes(app: web.Application, hooks: CallbackHooks) -> None:
    app[_HOOKS] = hooks
    app.router.add_get("/callbacks", _list)
    app.router.add_post("/callbacks", _file)
    app.router.add_post("/callbacks/{id}/dial", _dial)
