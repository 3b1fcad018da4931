"""The ops HTTP API: a real aiohttp server on a free port, a real aiohttp client."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from ari_app.config.files import ConfigError
from ari_app.ops.api import MAX_BODY, MAX_REPLAY_BODY, OpsServer, create_app
from ari_app.ops.dialplan_reload import ReloadResult
from ari_app.ops.metrics import Metrics

TOKEN = "s3cr3t-ops-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Hooks:
    """What the wiring injects, recording how it was used."""

    ready: dict[str, Any] = field(default_factory=lambda: {"ari": True, "redis": True, "ami": True})
    reload_result: Any = field(default_factory=lambda: ReloadResult(ok=True, message="Module Reloaded"))
    calls: list[dict[str, Any]] = field(default_factory=list)
    invalidated: list[str | None] = field(default_factory=list)
    reloads: int = 0
    replays: list[tuple[bytes, timedelta]] = field(default_factory=list)
    replay_error: BaseException | None = None

    def check(self, name: str):
        async def check() -> bool:
            value = self.ready[name]
            if isinstance(value, BaseException):
                raise value
            if value == "slow":
                await asyncio.Event().wait()
            return value
        return check

    async def reload(self) -> Any:
        self.reloads += 1
        if isinstance(self.reload_result, BaseException):
            raise self.reload_result
        return self.reload_result

    def live_calls(self) -> list[dict[str, Any]]:
        return self.calls

    async def invalidate(self, number: str | None) -> int:
        self.invalidated.append(number)
        return 1 if number else 7

    async def replay(self, candidate: bytes, since: timedelta) -> dict[str, Any]:
        self.replays.append((candidate, since))
        if self.replay_error is not None:
            raise self.replay_error
        return {"calls": 3, "changed": 1, "changes": []}


@dataclass
class Api:
    url: str
    http: aiohttp.ClientSession
    hooks: Hooks
    metrics: Metrics

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.http.request(method, self.url + path, **kwargs) as answer:
            if answer.content_type == "application/json":
                return answer.status, await answer.json()
            return answer.status, await answer.text()


async def serve(token: Any, hooks: Hooks, metrics: Metrics) -> OpsServer:
    app = create_app(token=token, metrics=metrics,
                     checks={name: hooks.check(name) for name in hooks.ready},
                     reload=hooks.reload, live_calls=hooks.live_calls, invalidate=hooks.invalidate,
                     replay=hooks.replay, check_timeout=0.2)
    server = OpsServer(app, port=0)
    await server.start()
    return server


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    hooks, metrics = Hooks(), Metrics()
    server = await serve(SecretStr(TOKEN), hooks, metrics)
    async with aiohttp.ClientSession() as http:
        yield Api(f"http://127.0.0.1:{server.port}", http, hooks, metrics)
    await server.close()


# -- public endpoints ---------------------------------------------------------------------


async def test_healthz_needs_no_token(api):
    assert await api.request("GET", "/healthz") == (200, {"ok": True})


async def test_readyz_all_ready(api):
    status, body = await api.request("GET", "/readyz")
    assert status == 200
    assert body == {"ready": True, "checks": {"ari": True, "redis": True, "ami": True}, "failed": []}


@pytest.mark.parametrize("bad", [False, RuntimeError("redis down"), "slow", None])
async def test_readyz_names_what_failed(api, bad):
    api.hooks.ready["redis"] = bad  # False, raising, too slow, or not a bool
    status, body = await api.request("GET", "/readyz")
    assert status == 503
    assert body["ready"] is False and body["failed"] == ["redis"]
    assert body["checks"] == {"ari": True, "redis": False, "ami": True}


# -- authentication -----------------------------------------------------------------------

PROTECTED = [("GET", "/metrics"), ("POST", "/reload"), ("GET", "/calls"), ("GET", "/calls/x"),
             ("POST", "/crm/invalidate"), ("POST", "/replay"), ("GET", "/nope")]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
    {"Authorization": "Bearer"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": "Bearer тест"},
])
async def test_protected_endpoints_refuse_bad_credentials(api, method, path, headers):
    async with api.http.request(method, api.url + path, headers=headers) as answer:
        assert answer.status == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in await answer.text()
    assert api.hooks.reloads == 0 and api.hooks.invalidated == [] and api.hooks.replays == []


@pytest.mark.parametrize("token", [None, "", SecretStr("")])
async def test_without_a_configured_token_everything_protected_is_forbidden(token):
    hooks, metrics = Hooks(), Metrics()
    server = await serve(token, hooks, metrics)
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{server.port}"
            for method, path in PROTECTED:
                for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"}):
                    async with http.request(method, url + path, headers=headers) as answer:
                        assert answer.status == 403, (method, path, headers)
            async with http.get(url + "/healthz") as answer:
                assert answer.status == 200
    finally:
        await server.close()
    assert hooks.reloads == 0


async def test_scheme_is_case_insensitive(api):
    status, _ = await api.request("GET", "/calls", headers={"Authorization": f"bearer {TOKEN}"})
    assert status == 200


# -- protected endpoints ------------------------------------------------------------------


async def test_metrics_in_prometheus_text(api):
    api.metrics.call("repeat", "manager", "answered")
    api.metrics.decision(0.004)
    async with api.http.get(api.url + "/metrics", headers=AUTH) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await answer.text()
    assert 'caseline_calls_total{class="repeat",outcome="answered",service="manager"} 1.0' in text
    assert 'caseline_decision_seconds_bucket{le="0.005"} 1.0' in text
    assert "caseline_live_calls 0.0" in text
    assert "python_gc" not in text  # our registry, not the global one


async def test_reload_ok(api):
    assert await api.request("POST", "/reload", headers=AUTH) == (200, {"ok": True, "error": None})
    assert api.hooks.reloads == 1


@pytest.mark.parametrize(("result", "status", "error"), [
    (ReloadResult(ok=False, error="extensions.conf:3: unbalanced context"), 500,
     "extensions.conf:3: unbalanced context"),
    ({"ok": False, "error": "AMI down"}, 500, "AMI down"),
    ({"ok": True}, 200, None),
    (None, 200, None),
    (RuntimeError("boom: secret"), 500, "internal error (see the log)"),
])
async def test_reload_reports_failures(api, result, status, error):
    api.hooks.reload_result = result
    code, body = await api.request("POST", "/reload", headers=AUTH)
    assert code == status and body["error"] == error and body["ok"] is (status == 200)


async def test_reload_is_post_only(api):
    status, body = await api.request("GET", "/reload", headers=AUTH)
    assert status == 405 and "error" in body


async def test_live_calls(api):
    api.hooks.calls = [{"call_id": "1718000000.1", "step": "ringing mgr1"}, {"id": "abc", "step": "queue"}]
    status, body = await api.request("GET", "/calls", headers=AUTH)
    assert status == 200 and body == {"calls": api.hooks.calls, "count": 2}
    assert await api.request("GET", "/calls/1718000000.1", headers=AUTH) == (200, api.hooks.calls[0])
    assert await api.request("GET", "/calls/abc", headers=AUTH) == (200, api.hooks.calls[1])


@pytest.mark.parametrize("path", ["/calls/unknown", "/calls/%2E%2E", "/calls/" + "x" * 100, "/calls/a%20b"])
async def test_unknown_call_is_404(api, path):
    api.hooks.calls = [{"call_id": "1718000000.1"}]
    status, body = await api.request("GET", path, headers=AUTH)
    assert status == 404 and body["error"] in ("no such call", "Not Found")


async def test_unknown_path_is_404_with_a_token(api):
    status, body = await api.request("GET", "/nope", headers=AUTH)
    assert status == 404 and body["error"] == "Not Found"


async def test_crm_invalidate_one_number(api):
    status, body = await api.request("POST", "/crm/invalidate", headers=AUTH, json={"number": " +79161234567 "})
    assert status == 200 and body == {"ok": True, "all": False, "invalidated": 1}
    assert api.hooks.invalidated == ["+79161234567"]


async def test_crm_invalidate_all(api):
    status, body = await api.request("POST", "/crm/invalidate", headers=AUTH, json={"all": True})
    assert status == 200 and body == {"ok": True, "all": True, "invalidated": 7}
    assert api.hooks.invalidated == [None]


@pytest.mark.parametrize("data", [
    b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'"x"', b"{}", b'{"all": false}', b'{"all": "yes"}',
    b'{"number": 79161234567}', b'{"number": ""}', b'{"number": "1\\n2"}',
    b'{"number": "+7916", "all": true}', b'{"number": "' + b"1" * 65 + b'"}',
])
async def test_crm_invalidate_rejects_bad_bodies(api, data):
    status, body = await api.request("POST", "/crm/invalidate", headers=AUTH, data=data)
    assert status == 400 and "error" in body
    assert api.hooks.invalidated == []


async def test_bodies_are_bounded(api):
    data = b'{"number": "' + b"1" * (MAX_BODY + 10) + b'"}'
    status, body = await api.request("POST", "/crm/invalidate", headers=AUTH, data=data)
    assert status == 413 and "error" in body
    assert api.hooks.invalidated == []


# -- replay -------------------------------------------------------------------------------


async def test_replay_passes_the_candidate_and_since(api):
    status, body = await api.request("POST", "/replay?since=2h", headers=AUTH, data=b"version: 1\n")
    assert (status, body) == (200, {"calls": 3, "changed": 1, "changes": []})
    assert api.hooks.replays == [(b"version: 1\n", timedelta(hours=2))]


async def test_replay_since_defaults_to_a_day_and_takes_a_full_routing_file(api):
    big = b"# " + b"x" * (MAX_BODY * 2) + b"\n"  # larger than the other endpoints accept
    status, _ = await api.request("POST", "/replay", headers=AUTH, data=big)
    assert status == 200 and api.hooks.replays == [(big, timedelta(hours=24))]


async def test_replay_invalid_candidate_is_a_400_naming_file_line_key_reason(api):
    api.hooks.replay_error = ConfigError("<candidate>", "rules.abc.A.target.0", "manager:x not found", 42)
    status, body = await api.request("POST", "/replay", headers=AUTH, data=b"x: 1\n")
    assert status == 400
    assert body == {"error": "<candidate>:42: rules.abc.A.target.0: manager:x not found", "file": "<candidate>",
                    "line": 42, "key": "rules.abc.A.target.0", "reason": "manager:x not found"}


@pytest.mark.parametrize("since", ["soon", "", "-1h"])
async def test_replay_rejects_a_bad_since(api, since):
    status, body = await api.request("POST", f"/replay?since={since}", headers=AUTH, data=b"x: 1\n")
    assert status == 400 and body["error"].startswith("since:")
    assert api.hooks.replays == []


async def test_replay_body_is_bounded(api):
    status, body = await api.request("POST", "/replay", headers=AUTH, data=b"#" * (MAX_REPLAY_BODY + 1))
    assert status == 413 and "error" in body
    assert api.hooks.replays == []


async def test_replay_failure_is_a_500_without_details(api):
    api.hooks.replay_error = RuntimeError("secret detail")
    status, body = await api.request("POST", "/replay", headers=AUTH, data=b"x: 1\n")
    assert (status, body) == (500, {"error": "internal error (see the log)"})


async def test_binds_loopback_by_default():
    hooks = Hooks()
    server = await serve(TOKEN, hooks, Metrics())
    try:
        assert server.host == "127.0.0.1"
        assert server._runner.addresses[0][0] == "127.0.0.1"
    finally:
        await server.close()
