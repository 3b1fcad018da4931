"""The ops HTTP API (aiohttp): health, readiness, metrics, reload, live calls, CRM cache,
replay of a candidate routing policy on recent calls, callback requests (callbacks_api.py),
and the ops console: its files at /console/ (console.py) and data routes (console_api.py).

Everything but /healthz, /readyz, /openapi.json (openapi.py: the API's description) and the
console's files (no data in them) needs `Authorization: Bearer <ops token>`. With no token
configured every protected endpoint answers 403: the API is never open by accident.
It binds 127.0.0.1 by default. Request bodies are bounded. What the endpoints act on is
injected (the wiring in ari_app.main owns the real objects), so this module has no
knowledge of ARI, Redis or the CRM.
"""
from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import SecretStr

from ari_app.config.files import ConfigError
from ari_app.config.history_settings import parse_duration
from ari_app.ops import openapi
from ari_app.ops.callbacks_api import CallbackHooks, add_callback_routes
from ari_app.ops.console import add_console_files, add_security_headers, is_console_file
from ari_app.ops.console_api import ConsoleHooks, add_console_routes
from ari_app.ops.http_body import read_capped
from ari_app.ops.listen import ConnectionGuard, GuardedSite, PortInUse, is_port_in_use
from ari_app.ops.metrics import CONTENT_TYPE, Metrics
from ari_app.ops.readiness import Check, Readiness

log = logging.getLogger("caseline.ops")


class _NoRawRequestInLogs(logging.Filter):
    """aiohttp logs a malformed request with its parser error, and that error quotes the raw
    offending line: for an Authorization header broken by a CR or NUL, that line is the token.
    Keep the fact (and the peer), drop the bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = f"{record.msg}: malformed HTTP request ({type(exc).__name__}, HTTP {exc.code})"
            record.exc_info = record.exc_text = None
            if record.levelno > logging.WARNING:  # the client's mistake, not our failure
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


http_log = logging.getLogger("caseline.ops.http")  # aiohttp's server messages for the ops API
http_log.addFilter(_NoRawRequestInLogs())

MAX_BODY = 16 * 1024
# Connection bounds: idle sockets must not exhaust the process's descriptors (listen.py).
MAX_CONNECTIONS = 64
HEADER_TIMEOUT_S = 10.0  # from connect to a complete first request
KEEPALIVE_TIMEOUT_S = 30.0  # idle between requests (aiohttp's default is an hour)
READY_CACHE_S = 2.0  # /readyz is open: at most one run of the checks (an AMI login) per this
MAX_REPLAY_BODY = 256 * 1024  # a candidate routing.yaml (the shipped one is ~10 KB)
REPLAY_DEFAULT_SINCE = timedelta(hours=24)
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", openapi.PATH})
_CALL_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)

# reload() answers an object with `.ok`/`.error` (e.g. ReloadResult) or a dict {"ok", "error"}.
Reload = Callable[[], Awaitable[Any]]
LiveCalls = Callable[[], "list[dict[str, Any]] | Awaitable[list[dict[str, Any]]]"]
# invalidate(number) drops one number from the CRM cache; invalidate(None) drops everything.
Invalidate = Callable[[str | None], Awaitable[Any]]
# replay(candidate YAML, since) -> the report as a JSON-ready mapping; ConfigError if invalid.
Replay = Callable[[bytes, timedelta], Awaitable[Mapping[str, Any]]]

_TOKEN = web.AppKey("token", bytes)
_HOOKS = web.AppKey("hooks", dict)


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, default=str))


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@web.middleware
async def _auth(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                ) -> web.StreamResponse:
    try:
        # the console's files hold no data: its page sends the token on each data request
        if request.path not in PUBLIC_PATHS and not is_console_file(request.path):
            token = request.app[_TOKEN]
            if not token:
                return _json({"error": "ops token not configured"}, 403)
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            # compare_digest on bytes: constant time, and no TypeError on non-ASCII input
            given = presented.strip().encode("utf-8", "surrogatepass")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given, token):
                return web.json_response({"error": "unauthorized"}, status=401,
                                         headers={"WWW-Authenticate": 'Bearer realm="caseline"'})
        return await handler(request)
    except web.HTTPException as e:  # 404, 405, 413 ... as JSON like everything else
        if e.status < 400:
            raise
        return _json({"error": e.reason}, e.status)


async def _healthz(request: web.Request) -> web.Response:
    return _json({"ok": True})


async def _readyz(request: web.Request) -> web.Response:
    readiness: Readiness = request.app[_HOOKS]["readiness"]  # cached, one run at a time
    status = await readiness.status()
    failed = [name for name, ok in status.items() if not ok]
    return _json({"ready": not failed, "checks": status, "failed": failed}, 503 if failed else 200)


async def _metrics(request: web.Request) -> web.Response:
    metrics: Metrics = request.app[_HOOKS]["metrics"]
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})


async def _reload(request: web.Request) -> web.Response:
    hooks = request.app[_HOOKS]
    async with hooks["reload_lock"]:  # one reload at a time; the next one waits
        try:
            result = await hooks["reload"]()
        except Exception:
            log.exception("reload failed")
            return _json({"ok": False, "error": "internal error (see the log)"}, 500)
    if result is None:
        ok, error = True, ""
    elif isinstance(result, Mapping):
        ok, error = bool(result.get("ok")), str(result.get("error") or "")
    else:
        ok, error = bool(getattr(result, "ok", False)), str(getattr(result, "error", "") or "")
    return _json({"ok": ok, "error": error or None}, 200 if ok else 500)


async def _live(request: web.Request) -> list[dict[str, Any]]:
    calls = await _maybe_await(request.app[_HOOKS]["live_calls"]())
    return [c for c in calls if isinstance(c, Mapping)]


async def _calls(request: web.Request) -> web.Response:
    try:
        calls = await _live(request)
    except Exception:
        log.exception("live_calls failed")
        return _json({"error": "internal error"}, 500)
    return _json({"calls": calls, "count": len(calls)})


async def _call(request: web.Request) -> web.Response:
    call_id = request.match_info["id"]
    if not _CALL_ID_RE.fullmatch(call_id):
        return _json({"error": "no such call"}, 404)
    try:
        calls = await _live(request)
    except Exception:
        log.exception("live_calls failed")
        return _json({"error": "internal error"}, 500)
    for call in calls:
        if str(call.get("call_id", call.get("id", ""))) == call_id:
            return _json(call)
    return _json({"error": "no such call"}, 404)


async def _crm_invalidate(request: web.Request) -> web.Response:
    try:
        body = await request.json(loads=json.loads)
    except (ValueError, LookupError, RecursionError):
        # ValueError: bad JSON or bytes; LookupError: an unknown `charset=` in Content-Type;
        # RecursionError: `[[[[...` nested deeper than the decoder goes (fits in MAX_BODY).
        return _json({"error": "body is not valid JSON"}, 400)
    if not isinstance(body, dict):
        return _json({"error": 'expected {"number": "..."} or {"all": true}'}, 400)
    number, everything = body.get("number"), body.get("all")
    if everything is True and number is None:
        target = None
    elif (isinstance(number, str) and 0 < len(number.strip()) <= 64 and everything in (None, False)
          and number.isprintable()):
        target = number.strip()
    else:
        return _json({"error": 'expected {"number": "..."} or {"all": true}'}, 400)
    try:
        result = await request.app[_HOOKS]["invalidate"](target)
    except Exception:
        log.exception("CRM cache invalidation failed")
        return _json({"ok": False, "error": "internal error"}, 500)
    if isinstance(result, Mapping):  # the wiring's hook answers {"ok", "error", "invalidated"}
        if not result.get("ok", True):
            return _json({"ok": False, "error": str(result.get("error") or "refused")[:200]}, 400)
        result = result.get("invalidated")
    invalidated = result if isinstance(result, int | str) and not isinstance(result, bool) else None
    return _json({"ok": True, "all": target is None, "invalidated": invalidated})


async def _replay(request: web.Request) -> web.Response:
    hook = request.app[_HOOKS]["replay"]
    if hook is None:
        return _json({"error": "replay is not available"}, 404)
    try:
        since = parse_duration(request.query.get("since", "")) if "since" in request.query else REPLAY_DEFAULT_SINCE
    except ValueError as e:
        return _json({"error": f"since: {e}"}, 400)
    body = await read_capped(request, MAX_REPLAY_BODY)
    if body is None:
        return _json({"error": f"candidate larger than {MAX_REPLAY_BODY} bytes"}, 413)
    try:
        report = await hook(body, since)
    except ConfigError as e:
        return _json({"error": str(e), "file": e.file, "line": e.line, "key": e.key, "reason": e.reason}, 400)
    except Exception:
        log.exception("replay failed")
        return _json({"error": "internal error (see the log)"}, 500)
    return _json(dict(report))


def create_app(*, token: SecretStr | str | None, metrics: Metrics, checks: Mapping[str, Check],
               reload: Reload, live_calls: LiveCalls, invalidate: Invalidate,
               replay: Replay | None = None, console: ConsoleHooks | None = None,
               callbacks: CallbackHooks | None = None,
               check_timeout: float = 2.0,
               ready_cache_s: float = READY_CACHE_S) -> web.Application:
    """The aiohttp application; `checks` maps a name ("ari", "redis", "ami") to an async bool."""
    secret = token.get_secret_value() if isinstance(token, SecretStr) else (token or "")
    app = web.Application(middlewares=[_auth], client_max_size=MAX_BODY)
    app[_TOKEN] = secret.encode()
    app[_HOOKS] = {
        "metrics": metrics, "checks": dict(checks), "reload": reload, "live_calls": live_calls,
        "invalidate": invalidate, "check_timeout": check_timeout, "reload_lock": asyncio.Lock(),
        "replay": replay,
        "readiness": Readiness(checks, timeout=check_timeout, ttl_s=ready_cache_s),
    }
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/reload", _reload)
    app.router.add_get("/calls", _calls)
    app.router.add_get("/calls/{id}", _call)
    app.router.add_post("/crm/invalidate", _crm_invalidate)
    app.router.add_post("/replay", _replay)
    openapi.add_openapi_route(app)  # documents every route here and below (ops/openapi.json)
    add_security_headers(app)
    add_console_files(app)  # /console/ (ops/console.py)
    if console is not None:  # its data routes, behind the token like everything above
        add_console_routes(app, console, live_calls)
    if callbacks is not None:  # GET/POST /callbacks, POST /callbacks/{id}/dial (ops/callbacks_api.py)
        add_callback_routes(app, callbacks)
    return app


class OpsServer:
    """The API on a TCP port: `await OpsServer(app, port=0).start()`, then `.port`."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 8090,
                 *, max_connections: int = MAX_CONNECTIONS, header_timeout: float = HEADER_TIMEOUT_S,
                 keepalive_timeout: float = KEEPALIVE_TIMEOUT_S) -> None:
        self.app = app
        self.host = host
        self._port = port
        # bounds against descriptor exhaustion by idle sockets (ari_app/ops/listen.py)
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self.guard: ConnectionGuard | None = None
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        if self._runner is not None and self._runner.addresses:
            return int(self._runner.addresses[0][1])
        return self._port

    async def start(self) -> None:
        # access_log=None: our logs are JSON lines; aiohttp's access lines are not.
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, logger=http_log,
                                     keepalive_timeout=self.keepalive_timeout)
        await self._runner.setup()
        assert self._runner.server is not None
        self.guard = ConnectionGuard(self._runner.server, limit=self.max_connections,
                                     header_timeout=self.header_timeout)
        site = GuardedSite(self._runner, self.host, self._port, self.guard)
        try:
            await site.start()
        except BaseException as e:
            await self._runner.cleanup()
            self._runner = None
            if is_port_in_use(e):
                raise PortInUse("ops API", self.host, self._port) from None
            raise
        log.info("ops API listening on %s:%d", self.host, self.port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OpsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
