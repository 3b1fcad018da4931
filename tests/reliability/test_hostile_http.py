"""Hostile HTTP against the ops API: a real OpsServer on a free port, the real hooks from
`ari_app.main` (reload of the shipped config, CRM cache invalidation on the file CRM, Redis
readiness on a real redis-server), a real aiohttp client, and raw sockets for what a
well-behaved client refuses to send (CR/LF in a header, raw non-ASCII bytes, unnormalised
paths).

Claims: /healthz and /readyz are open, everything else needs the bearer token; no request
gets a 500; bodies over MAX_BODY get 413; bad JSON and wrong types get 400; hostile numbers
never reach the CRM cache; the token never appears in a log line.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

import aiohttp
import pytest
from redis.asyncio import Redis

from ari_app.crm.factory import build_crm
from ari_app.crm.service import CrmService
from ari_app.main import invalidate_hook, redis_check, reload_hook
from ari_app.ops.api import MAX_BODY, OpsServer, create_app
from ari_app.ops.metrics import Metrics
from ari_app.config.live import LiveConfig
from ari_app.config.settings import load_settings

from tests.support.hostile_inputs import HOSTILE_CALLER_IDS, Hostile, hostile_id

CONFIG = Path(__file__).resolve().parents[2] / "config"
TOKEN = "ops-T0ken-for-tests-7f3a9c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
KNOWN = "+79161234567"  # in config/clients.yaml
GUARD_S = 5.0

PROTECTED = [("GET", "/metrics"), ("POST", "/reload"), ("GET", "/calls"), ("GET", "/calls/x1"),
             ("POST", "/crm/invalidate"), ("GET", "/nope"), ("DELETE", "/metrics"), ("PUT", "/reload")]


@dataclass
class Ops:
    url: str
    port: int
    http: aiohttp.ClientSession
    crm: CrmService
    statuses: list[int]

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.http.request(method, self.url + path, allow_redirects=False, **kwargs) as answer:
            self.statuses.append(answer.status)
            text = await answer.text()
            if answer.content_type == "application/json" and text:
                return answer.status, json.loads(text)
            return answer.status, text

    async def raw(self, data: bytes) -> tuple[int, bytes]:
        """One raw HTTP/1.1 exchange: (status, body). The server closes (Connection: close)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(data)
            await writer.drain()
            async with asyncio.timeout(GUARD_S):
                answer = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        head, _, body = answer.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        self.statuses.append(status)
        return status, body


async def start_ops(redis: Redis, token: str) -> tuple[OpsServer, CrmService]:
    settings = load_settings(CONFIG, env={})
    crm = CrmService.from_settings(settings.crm, build_crm(settings.crm, CONFIG, env={}))
    config = LiveConfig(CONFIG / settings.routing_file, CONFIG / settings.legal_entities_file, crm)
    app = create_app(token=token, metrics=Metrics(), checks={"redis": redis_check(redis)},
                     reload=reload_hook(config), live_calls=list,
                     invalidate=invalidate_hook(crm, settings.numbers.default_region))
    server = OpsServer(app, port=0)
    await server.start()
    return server, crm


@pytest.fixture
async def ops(redis: Redis) -> AsyncIterator[Ops]:
    server, crm = await start_ops(redis, TOKEN)
    statuses: list[int] = []
    try:
        async with aiohttp.ClientSession() as http:
            yield Ops(f"http://127.0.0.1:{server.port}", server.port, http, crm, statuses)
    finally:
        await server.close()
        await crm.aclose()
    assert 500 not in statuses, "the ops API answered 500 to hostile input"
    assert statuses, "no request was made"


def raw_get(path: bytes, *headers: bytes, method: bytes = b"GET", body: bytes = b"") -> bytes:
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close", *headers]
    if body:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# -- open and closed ------------------------------------------------------------------------------


async def test_health_endpoints_are_open(ops: Ops) -> None:
    assert await ops.request("GET", "/healthz") == (200, {"ok": True})
    status, body = await ops.request("GET", "/readyz")
    assert status == 200 and body["checks"] == {"redis": True}
    # A token, even a wrong one, does not close them.
    assert (await ops.request("GET", "/healthz", headers={"Authorization": "Bearer wrong"}))[0] == 200


BAD_AUTH_HEADERS = {
    "missing": None,
    "empty": "",
    "scheme_only": "Bearer",
    "empty_token": "Bearer ",
    "basic": "Basic " + TOKEN,
    "wrong": "Bearer wrong",
    "prefix_of_token": "Bearer " + TOKEN[:-1],
    "token_plus_one": "Bearer " + TOKEN + "x",
    "token_twice": f"Bearer {TOKEN} {TOKEN}",
    "no_scheme": TOKEN,
    "huge_8k": "Bearer " + "A" * 8000,
    "huge_over_limit": "Bearer " + "A" * 70_000,  # over aiohttp's header line limit
    "latin1": "Bearer " + TOKEN + "\u00e9",
}


@pytest.mark.parametrize("auth", BAD_AUTH_HEADERS.values(), ids=list(BAD_AUTH_HEADERS))
async def test_everything_else_is_closed(ops: Ops, auth: str | None) -> None:
    headers = {} if auth is None else {"Authorization": auth}
    for method, path in PROTECTED:
        status, body = await ops.request(method, path, headers=headers, json={"all": True})
        if auth is not None and len(auth) > 8190:
            assert status in (400, 431), (method, path, status)  # refused by the HTTP parser itself
        else:
            assert (status, body) == (401, {"error": "unauthorized"}), (method, path)
    assert ops.crm.stats["calls"] == 0


RAW_AUTH = {
    "crlf_splits_the_token_off": b"Authorization: Bearer\r\n" + TOKEN.encode(),
    "crlf_then_a_second_token": b"Authorization: Bearer wrong\r\nAuthorization: Bearer " + TOKEN.encode() + b"x",
    "bare_cr": b"Authorization: Bearer " + TOKEN.encode() + b"\rX",
    "bare_lf": b"Authorization: Bearer x\nAuthorization: Bearer " + TOKEN.encode(),
    "utf8": "Authorization: Bearer жжж".encode(),
    "invalid_utf8": b"Authorization: Bearer \xff\xfe\x80",
    "nul": b"Authorization: Bearer " + TOKEN.encode() + b"\x00",
    "token_with_nul_prefix": b"Authorization: Bearer \x00" + TOKEN.encode(),
    "duplicate_headers": b"Authorization: Bearer wrong\r\nAuthorization: Bearer " + TOKEN.encode(),
    "folded": b"Authorization: Bearer\r\n " + TOKEN.encode(),
}


@pytest.mark.parametrize("header", RAW_AUTH.values(), ids=list(RAW_AUTH))
async def test_malformed_authorization_never_opens_and_never_leaks(ops: Ops, header: bytes, json_logs) -> None:
    status, body = await ops.raw(raw_get(b"/metrics", header))
    assert status in (400, 401), (status, body[:200])
    assert b"caseline_" not in body  # no metrics
    json_logs.assert_clean(forbidden=[TOKEN])


# -- paths ----------------------------------------------------------------------------------------

TRAVERSALS = [
    b"/healthz/../metrics", b"/healthz/%2e%2e/metrics", b"/healthz/%2E%2E/metrics", b"/%2e%2e/metrics",
    b"/healthz/..%2fmetrics", b"/healthz%2f..%2fmetrics", b"//metrics", b"/./metrics", b"/healthz/./../metrics",
    b"/readyz/..;/metrics", b"/healthz%00/../metrics", b"/healthz?/../metrics", b"/healthz#/../metrics",
    b"/HEALTHZ", b"/healthz/", b"/metrics%00", b"/calls/..%2f..%2f..%2fetc%2fpasswd", b"/calls/%00",
    b"/calls/" + b"a" * 4000, b"http://127.0.0.1/metrics", b"*", b"/calls/\xff\xfe", b"/\xd0\xb6",
    b"/healthz\\..\\metrics",
]


@pytest.mark.parametrize("path", TRAVERSALS, ids=[p[:40].decode("latin-1") for p in TRAVERSALS])
async def test_path_traversal_reaches_nothing_protected(ops: Ops, path: bytes) -> None:
    status, body = await ops.raw(raw_get(path))
    assert status in (200, 400, 401, 404), (status, body[:200])
    if status == 200:  # only ever a health endpoint ("/healthz?/../metrics" is /healthz)
        assert body == b'{"ok": true}', body[:200]
    assert b"caseline_" not in body and b"root:" not in body


@pytest.mark.parametrize("path", TRAVERSALS, ids=[p[:40].decode("latin-1") for p in TRAVERSALS])
async def test_path_traversal_with_the_token_is_never_a_500_or_a_file(ops: Ops, path: bytes) -> None:
    status, body = await ops.raw(raw_get(path, b"Authorization: Bearer " + TOKEN.encode()))
    assert status in (200, 400, 401, 404), (status, body[:200])
    assert b"root:" not in body


@pytest.mark.parametrize("hostile", HOSTILE_CALLER_IDS, ids=hostile_id)
async def test_hostile_call_ids(ops: Ops, hostile: Hostile) -> None:
    path = b"/calls/" + quote_from_bytes(hostile.raw, safe="").encode()
    status, body = await ops.raw(raw_get(path, b"Authorization: Bearer " + TOKEN.encode()))
    assert status in (400, 404), (status, body[:200])


# -- bodies ---------------------------------------------------------------------------------------


async def test_body_over_the_limit_is_413(ops: Ops) -> None:
    status, body = await ops.request("POST", "/crm/invalidate", headers=AUTH,
                                     data=b'{"number": "' + b"1" * MAX_BODY + b'"}')
    assert status == 413 and "error" in body
    chunks = (b"x" * 4096 for _ in range(1024))  # 4 MB, chunked, no Content-Length

    async def stream() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    status, _ = await ops.request("POST", "/crm/invalidate", headers=AUTH, data=stream())
    assert status == 413
    status, _ = await ops.request("POST", "/reload", headers=AUTH, data=b"x" * (MAX_BODY + 1))
    assert status in (200, 413)  # /reload reads no body; it must not choke on one either
    assert ops.crm.stats["calls"] == 0


async def test_lying_content_length(ops: Ops) -> None:
    request = (b"POST /crm/invalidate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Type: application/json\r\n"
               b"Content-Length: 99999999999999999999\r\n\r\n{}")
    status, _ = await ops.raw(request)
    assert status in (400, 413)


INVALID_JSON = {
    "empty": (b"", "application/json"),
    "truncated": (b'{"number": "+7916', "application/json"),
    "invalid_utf8": (b'{"number": "\xff\xfe"}', "application/json"),
    "utf16_bom": ('{"all": true}'.encode("utf-16"), "application/json"),
    "deeply_nested_list": (b"[" * 8000 + b"]" * 8000, "application/json"),
    "deeply_nested_object": (b'{"a":' * 2500 + b"1" + b"}" * 2500, "application/json"),
    "bogus_charset": (b'{"all": true}', "application/json; charset=bogus-8"),
    "nan": (b'{"number": NaN}', "application/json"),
    "infinity": (b'{"number": Infinity}', "application/json"),
    "huge_int": (b'{"number": ' + b"9" * 5000 + b"}", "application/json"),
    "huge_exponent": (b'{"number": 1e999999}', "application/json"),
    "lone_surrogate": (b'{"number": "\\ud800"}', "application/json"),
    "nul_in_string": (b'{"number": "+7916\\u00001234567"}', "application/json"),
    "trailing_garbage": (b'{"all": true} {"all": true}', "application/json"),
    "html": (b"<html><body>hi</body></html>", "text/html"),
    "form": (b"number=%2B79161234567", "application/x-www-form-urlencoded"),
    "redis_protocol": (b"*1\r\n$8\r\nFLUSHALL\r\n", "application/json"),
}


@pytest.mark.parametrize(("body", "content_type"), INVALID_JSON.values(), ids=list(INVALID_JSON))
async def test_invalid_json_is_400(ops: Ops, body: bytes, content_type: str) -> None:
    await ops.crm.facts(KNOWN)  # a cached entry that must survive
    status, answer = await ops.request("POST", "/crm/invalidate", data=body,
                                       headers={**AUTH, "Content-Type": content_type})
    assert status == 400, (status, answer)
    assert ops.crm.cache_size == 1


WRONG_TYPES = [
    None, [], "string", 42, True, {}, {"number": 79161234567}, {"number": ["+79161234567"]},
    {"number": {"$ne": None}}, {"number": None}, {"number": ""}, {"number": " "}, {"number": "+" + "9" * 64},
    {"all": "true"}, {"all": 1}, {"all": None}, {"all": False}, {"all": True, "number": KNOWN},
    {"number": KNOWN, "all": "yes"}, {"number": True}, {"number": 1.5}, {"nUmber": KNOWN},
]


@pytest.mark.parametrize("data", WRONG_TYPES, ids=[json.dumps(d)[:30] for d in WRONG_TYPES])
async def test_json_of_wrong_types_is_400(ops: Ops, data: object) -> None:
    await ops.crm.facts(KNOWN)
    status, answer = await ops.request("POST", "/crm/invalidate", headers=AUTH, json=data)
    assert status == 400, (status, answer)
    assert ops.crm.cache_size == 1


@pytest.mark.parametrize("hostile", HOSTILE_CALLER_IDS, ids=hostile_id)
async def test_crm_invalidate_refuses_hostile_numbers(ops: Ops, hostile: Hostile, json_logs) -> None:
    """Whatever the number, it is refused (400) and the cache keeps the real client."""
    await ops.crm.facts(KNOWN)
    body = json.dumps({"number": hostile.text}).encode()  # lone surrogates as \udcxx escapes
    status, answer = await ops.request("POST", "/crm/invalidate", data=body,
                                       headers={**AUTH, "Content-Type": "application/json"})
    assert status == 400, (status, answer)
    assert answer["error"]
    assert ops.crm.cache_size == 1
    json_logs.assert_clean(forbidden=[hostile.marker or ""])


async def test_crm_invalidate_of_a_real_number_works(ops: Ops) -> None:
    await ops.crm.facts(KNOWN)
    status, answer = await ops.request("POST", "/crm/invalidate", headers=AUTH,
                                       json={"number": "8 (916) 123-45-67"})
    assert (status, answer) == (200, {"ok": True, "all": False, "invalidated": KNOWN})
    assert ops.crm.cache_size == 0


async def test_methods_and_reload_are_json_and_never_500(ops: Ops) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"):
        for path in ("/healthz", "/reload", "/crm/invalidate", "/calls"):
            status, _ = await ops.request(method, path, headers=AUTH)
            assert status in (200, 405), (method, path, status)
    status, answer = await ops.request("POST", "/reload", headers=AUTH, data=b"\xff" * 100)
    assert (status, answer) == (200, {"ok": True, "error": None})


async def test_without_a_configured_token_everything_protected_is_403(redis: Redis) -> None:
    server, crm = await start_ops(redis, "")
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{server.port}"
            for method, path in PROTECTED:
                for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer"}):
                    async with http.request(method, url + path, headers=headers) as answer:
                        assert answer.status == 403, (method, path, headers)
            async with http.get(url + "/healthz") as answer:
                assert answer.status == 200
    finally:
        await server.close()
        await crm.aclose()


async def test_the_token_never_reaches_a_log_line(ops: Ops, json_logs) -> None:
    """Malformed requests that carry the real token make aiohttp log the offending line."""
    for data in (raw_get(b"/metrics", b"Authorization: Bearer " + TOKEN.encode() + b"\rX"),
                 raw_get(b"/metrics", b"Authorization: Bearer " + TOKEN.encode() + b"A" * 9000),
                 raw_get(b"/metrics", b"Authorization: Bearer " + TOKEN.encode() + b"\x00")):
        await ops.raw(data)
    status, _ = await ops.request("GET", "/metrics", headers=AUTH)
    assert status == 200
    json_logs.assert_clean(forbidden=[TOKEN, TOKEN[:12]])
