"""GET /openapi.json against the routes the ops API really has.

The API runs in-process with everything mounted (the console's data routes and /callbacks
too, as `caseline run` wires them: tests/support/console_app.py), the document is fetched
over HTTP without a token, and its operations are compared with the app's route table.
"""
from __future__ import annotations

import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from redis.asyncio import Redis

from tests.support.console_app import AUTH, ConsoleApp, console_app, default_seeds, seed_log

PROJECT = Path(__file__).resolve().parents[2]
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture
async def ops(tmp_path: Path, redis: Redis) -> AsyncIterator[ConsoleApp]:
    async with console_app(tmp_path, redis, callbacks=[]) as app:
        yield app


async def fetch_document(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(url + "/openapi.json") as answer:
        assert answer.status == 200, await answer.text()
        assert answer.content_type == "application/json"
        return await answer.json()


def real_operations(ops: ConsoleApp) -> set[tuple[str, str]]:
    """(method, path) of every route, `{name:regex}` written as OpenAPI's `{name}`. aiohttp
    adds a HEAD beside each GET: the document says so once instead of listing them."""
    found = set()
    for route in ops.server.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        assert path, f"a route with neither a path nor a pattern: {route!r}"
        found.add((route.method.lower(), re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)))
    return {(m, p) for m, p in found if not (m == "head" and ("get", p) in found)}


def documented_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items() for method in item if method in METHODS}


async def test_every_route_is_documented_and_every_documented_one_exists(ops: ConsoleApp) -> None:
    doc = await fetch_document(ops.url)
    real, documented = real_operations(ops), documented_operations(doc)
    assert ("get", "/callbacks") in real and ("get", "/events/calls") in real  # everything is mounted
    assert real - documented == set(), "routes missing from ari_app/ops/openapi.json"
    assert documented - real == set(), "documented in ari_app/ops/openapi.json but not served"


async def test_the_document_is_valid_openapi(ops: ConsoleApp) -> None:
    validate(await fetch_document(ops.url))  # raises, naming the offending part


async def test_public_operations_are_exactly_those_served_without_the_token(ops: ConsoleApp) -> None:
    doc = await fetch_document(ops.url)
    public = {path for path, item in doc["paths"].items()
              for method, op in item.items() if method == "get" and op.get("security") == []}
    async with aiohttp.ClientSession() as http:
        for path in (p for p in doc["paths"] if "get" in doc["paths"][p]):
            url = ops.url + path.replace("{name}", "index.html").replace("{id}", "x")
            async with http.get(url, allow_redirects=False) as answer:
                assert (answer.status != 401) == (path in public), f"GET {path}: {answer.status}"


async def test_json_answers_match_their_documented_schemas(ops: ConsoleApp, redis: Redis) -> None:
    """Every GET without a path parameter that answers JSON, on a small day of calls: the
    answer's status is documented and its body fits the documented schema."""
    await seed_log(redis, ops.config.current.policy, default_seeds())
    ops.live.start("c-live-1", client="C-1001")
    doc = await fetch_document(ops.url)
    checked = set()
    async with aiohttp.ClientSession(headers=AUTH) as http:
        for path, item in doc["paths"].items():
            op = item.get("get")
            if op is None or "{" in path or "application/json" not in _answer(doc, op, "200").get("content", {}):
                continue
            params = {p["name"]: p["example"] for p in op.get("parameters", []) if p.get("required")}
            async with http.get(ops.url + path, params=params) as answer:
                assert str(answer.status) in op["responses"], f"GET {path}: undocumented {answer.status}"
                body = await answer.json()
            schema = _answer(doc, op, str(answer.status))["content"]["application/json"]["schema"]
            Draft202012Validator({**schema, "components": doc["components"]}).validate(body)
            checked.add(path)
    assert {"/readyz", "/calls", "/decisions", "/stats", "/explain", "/routing", "/callbacks"} <= checked


def _answer(doc: dict[str, Any], op: dict[str, Any], status: str) -> dict[str, Any]:
    answer = op["responses"].get(status, {})
    if "$ref" in answer:
        answer = doc["components"]["responses"][answer["$ref"].rpartition("/")[2]]
    return answer


def test_the_document_ships_in_the_package() -> None:
    globs = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "openapi.json" in globs["ari_app.ops"]
