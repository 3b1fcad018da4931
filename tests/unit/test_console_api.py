"""The console's routes on the ops API: a real aiohttp server and client, a real Redis
decision log, a LiveConfig over a copy of the shipped config (tests/support/console_app.py)."""
from __future__ import annotations

import asyncio
import re
import tomllib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatch
from pathlib import Path

import aiohttp
import pytest

from ari_app.ops import console_api
from ari_app.ops.console import ASSETS, CSP
from ari_app.ops.console_api import CONSOLE
from ari_app.ops.live_events import Dropped, LiveFeed
from tests.support.console_app import (
    AUTH,
    HOSTILE,
    PROJECT,
    ConsoleApp,
    console_app,
    default_seeds,
    seed_log,
)
from tests.support.eventually import eventually
from tests.support.sse import next_event, sse_events

DATA_ROUTES = [("GET", "/events/calls"), ("GET", "/decisions"), ("GET", "/stats"),
               ("GET", "/explain?number=%2B79161234567"), ("GET", "/routing"),
               ("POST", "/routing/check"), ("POST", "/routing/apply")]


@pytest.fixture
async def console(tmp_path: Path, redis) -> AsyncIterator[ConsoleApp]:
    async with console_app(tmp_path, redis) as app:
        yield app


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get_json(http: aiohttp.ClientSession, url: str, status: int = 200, **kw) -> dict:
    async with http.get(url, headers=AUTH, **kw) as answer:
        body = await answer.json()
        assert answer.status == status, body
        return body


# -- the token -----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), DATA_ROUTES)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Cookie": "token=x"}])
async def test_every_data_route_needs_the_token(console, http, method, path, headers):
    before = console.routing_path.read_bytes()
    async with http.request(method, console.url + path, headers=headers, data=b"version: 1\n") as answer:
        assert answer.status == 401
        assert answer.headers["Content-Security-Policy"] == CSP
    assert console.routing_path.read_bytes() == before and console.feed.subscribers == 0


async def test_without_a_configured_token_the_data_routes_are_forbidden(tmp_path, redis, http):
    async with console_app(tmp_path, redis, token=None) as app:
        for method, path in DATA_ROUTES:
            async with http.request(method, app.url + path, headers=AUTH) as answer:
                assert answer.status == 403, path
        async with http.get(app.url + "/console/") as answer:  # the page still loads, to say so
            assert answer.status == 200


# -- the console's files ---------------------------------------------------------------------


async def test_console_page_is_served_without_a_token_with_a_strict_csp(console, http):
    async with http.get(console.url + "/console/") as answer:
        assert answer.status == 200
        assert answer.content_type == "text/html"
        assert answer.headers["Content-Security-Policy"] == CSP
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        page = await answer.text()
    assert '<script type="module" src="js/main.js"></script>' in page
    for path, kind in [("js/main.js", "text/javascript"), ("console.css", "text/css"),
                       ("vendor/uPlot.iife.min.js", "text/javascript")]:
        async with http.get(f"{console.url}/console/{path}") as answer:
            assert (answer.status, answer.content_type) == (200, kind), path
            assert answer.headers["Content-Security-Policy"] == CSP
    async with http.get(console.url + "/console", allow_redirects=False) as answer:
        assert (answer.status, answer.headers["Location"]) == (301, "/console/")


@pytest.mark.parametrize("path", ["/console/nope.js", "/console/js/../../pyproject.toml",
                                  "/console/%2e%2e/calls", "/console/vendor/"])
async def test_only_the_console_files_are_served(console, http, path):
    async with http.get(console.url + path) as answer:
        assert answer.status in (401, 404), path  # 401: normalised out of /console/, still guarded
        assert "[project]" not in await answer.text()


async def test_a_path_out_of_the_console_is_still_guarded(console, http):
    async with http.get(console.url + "/console/../calls") as answer:
        assert answer.status == 401


def test_no_inline_script_style_or_handlers_and_no_html_from_data() -> None:
    page = (ASSETS / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", page) == [
        '<script src="vendor/uPlot.iife.min.js" defer>', '<script type="module" src="js/main.js">']
    assert "</script>" in page and not re.search(r"<script[^>]*>[^<\s]", page)  # no inline body
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=", page, re.I)
    for js in sorted(ASSETS.rglob("*.js")):
        code = js.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in code, f"{js.name}: {sink}"
        if "vendor" not in js.parts:
            assert not re.search(r"setAttribute\(\s*['\"](style|on)", code), js.name


def test_every_console_file_ships_in_the_package() -> None:
    globs = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["ari_app.ops"]
    for path in ASSETS.rglob("*"):
        if path.is_file():
            rel = path.relative_to(ASSETS.parent).as_posix()
            assert any(fnmatch(rel, g) for g in globs), f"{rel} is not in package-data"
    licence = (ASSETS / "vendor" / "uPlot.LICENSE.txt").read_text()
    assert "MIT License" in licence and "Leon Sorokin" in licence


# -- live calls (server-sent events) ---------------------------------------------------------


async def test_event_stream_delivers_published_calls(console, http):
    async with http.get(console.url + "/events/calls", headers=AUTH) as answer:
        assert answer.status == 200
        assert answer.content_type == "text/event-stream"
        assert answer.headers["Cache-Control"] == "no-store"
        events = sse_events(answer)
        assert (await next_event(events, "snapshot"))["calls"] == []
        console.live.start("c-1", name=HOSTILE, step="manager:mgr1", service="manager")
        assert await next_event(events, "decided") == {"type": "decided", "call_id": "c-1"}
        snapshot = await next_event(events, "snapshot")
        [call] = snapshot["calls"]
        assert (call["call_id"], call["name"], call["step"]) == ("c-1", HOSTILE, "manager:mgr1")
        assert abs(call["started"] - snapshot["now"]) < 5
        console.live.step("c-1", "queue:operators")  # no event: the stream's refresh sees it
        await next_event(events, "snapshot", where=lambda d: d["calls"][0]["step"] == "queue:operators")
        console.live.end("c-1", "queue")
        ended = await next_event(events, "ended")
        assert (ended["call_id"], ended["outcome"]) == ("c-1", "queue")
        assert (await next_event(events, "snapshot"))["calls"] == []


async def test_a_call_that_ended_is_not_shown_while_it_leaves_the_table(console, http):
    console.live.start("c-2")
    console.feed.ended("c-2", "answered")  # reported; the app drops it from its table a moment later
    async with http.get(console.url + "/events/calls", headers=AUTH) as answer:
        assert (await next_event(sse_events(answer), "snapshot"))["calls"] == []


async def test_a_stream_whose_browser_left_is_let_go(console, http, monkeypatch):
    monkeypatch.setattr(console_api, "KEEPALIVE_S", console_api.REFRESH_S)  # a write each refresh
    async with http.get(console.url + "/events/calls", headers=AUTH) as answer:
        await next_event(sse_events(answer), "snapshot")
        assert console.feed.subscribers == 1
    await eventually(lambda: console.feed.subscribers == 0, timeout=10)


async def test_too_many_streams_are_refused(tmp_path, redis, http):
    async with console_app(tmp_path, redis, feed=LiveFeed(max_subscribers=1)) as app:
        async with http.get(app.url + "/events/calls", headers=AUTH) as first:
            await next_event(sse_events(first), "snapshot")
            async with http.get(app.url + "/events/calls", headers=AUTH) as second:
                assert second.status == 503


async def test_shutdown_ends_open_streams_at_once(tmp_path, redis, http):
    async with console_app(tmp_path, redis) as app:
        async with http.get(app.url + "/events/calls", headers=AUTH) as answer:
            await next_event(sse_events(answer), "snapshot")
            async with asyncio.timeout(5):  # not aiohttp's 60 s shutdown timeout
                await app.server.close()


async def test_the_slowest_subscriber_is_dropped_not_waited_for():
    feed = LiveFeed(queue_limit=2)
    with feed.subscribe() as slow, feed.subscribe() as fast:
        for i in range(3):
            feed.publish({"type": "decided", "call_id": f"c{i}"})
            if i < 2:
                assert (await fast.next(0.1))["call_id"] == f"c{i}"
        assert slow.closed and not fast.closed
        assert feed.dropped == 1 and feed.subscribers == 1
        assert (await fast.next(0.1))["call_id"] == "c2"
        with pytest.raises(Dropped):
            await slow.next(0.1)


# -- the decision log ------------------------------------------------------------------------


async def test_decisions_newest_first_with_reasons_route_results_and_who_talked(console, http, redis):
    await seed_log(redis, console.config.current.policy, default_seeds())
    body = await get_json(http, console.url + "/decisions")
    assert [e["call_id"] for e in body["entries"]] == ["c-shed", "c-a-1", "c-new-2", "c-new-1", "c-old"]
    a = body["entries"][1]
    assert a["number"] == "***4567" and "profile" not in a
    assert {"rule": "abc.A", "text": "ABC category A -> manager:mgr1"} in a["reasons"]
    assert a["route_steps"] == [{"step": "manager:mgr1", "result": "busy"},
                                {"step": "supervisor:sup1", "result": "answered"},
                                {"step": "queue:operators", "result": "not reached"}]
    assert (a["talks"], a["holder"], a["answered_by"]) == ("sup1 42s > mgr1 180s", "mgr1", "mgr1")


@pytest.mark.parametrize(("query", "expected"), [
    ("number=4567", ["c-a-1"]),
    ("number=%2B79161234567", ["c-a-1"]),
    ("class=old", ["c-a-1"]),
    ("service=manager", ["c-a-1"]),
    ("outcome=dialplan", ["c-shed"]),
    ("since=2h", ["c-shed", "c-a-1", "c-new-2", "c-new-1"]),
    ("since=35m&class=new", ["c-shed"]),
    ("limit=2", ["c-shed", "c-a-1"]),
])
async def test_decisions_filter(console, http, redis, query, expected):
    await seed_log(redis, console.config.current.policy, default_seeds())
    body = await get_json(http, f"{console.url}/decisions?{query}")
    assert [e["call_id"] for e in body["entries"]] == expected


async def test_decisions_until_a_moment(console, http, redis):
    now = datetime.now(UTC)
    await seed_log(redis, console.config.current.policy, default_seeds(), now)
    until = (now - timedelta(minutes=35)).isoformat()
    body = await get_json(http, console.url + "/decisions", params={"until": until})
    assert [e["call_id"] for e in body["entries"]] == ["c-new-2", "c-new-1", "c-old"]


@pytest.mark.parametrize("query", ["since=yesterday", "limit=x", "class=a%20b", "number=abc"])
async def test_decisions_bad_filters_are_400(console, http, query):
    body = await get_json(http, f"{console.url}/decisions?{query}", status=400)
    assert body["error"].split(":")[0] in query


# -- pictures ------------------------------------------------------------------------------


async def test_stats_count_the_last_day_of_the_decision_log(console, http, redis):
    await seed_log(redis, console.config.current.policy, default_seeds())
    body = await get_json(http, console.url + "/stats")
    assert len(body["hours"]) == 24 and body["hours"][1] - body["hours"][0] == 3600
    assert body["total"] == 4  # the call 26 hours ago is not in the last day
    assert {k: sum(v) for k, v in body["by_class"].items()} == {"new": 3, "old": 1}
    assert {k: sum(v) for k, v in body["by_service"].items()} == {"manager": 1, "operator": 3}
    assert (sum(body["fallbacks"]), sum(body["sheds"]), sum(body["degraded"])) == (1, 1, 0)
    async with http.get(console.url + "/stats?hours=0", headers=AUTH) as answer:
        assert answer.status == 400


# -- explain ---------------------------------------------------------------------------------


async def test_explain_is_the_explain_json(console, http):
    body = await get_json(http, console.url + "/explain", params={"number": "+79161234567"})
    assert body["number"] == "+79161234567" and body["crm"]["name"] == HOSTILE
    assert body["crm"]["extra"] == {"segment": "fleet"}  # the CRM's record as returned
    assert body["decision"]["service"] == "manager"
    assert [(s["kind"], s["target"]) for s in body["decision"]["route"]] == [
        ("manager", "mgr1"), ("supervisor", "sup1"), ("queue", "operators")]
    assert {"rule": "abc.A", "text": "ABC category A -> manager:mgr1"} in body["decision"]["reasons"]
    assert set(body) >= {"class", "owner", "owner_source", "timezone", "local_time", "crm_status"}


async def test_explain_at_a_moment_in_company_time(console, http):
    body = await get_json(http, console.url + "/explain",
                          params={"number": "+79990001123", "at": "2026-06-15T21:30"})
    assert body["at"] == "2026-06-15T21:30:00+03:00"


@pytest.mark.parametrize("params", [{}, {"number": ""}, {"number": "1" * 65},
                                    {"number": "+79990001123", "at": "tomorrow"}])
async def test_explain_bad_questions_are_400(console, http, params):
    await get_json(http, console.url + "/explain", status=400, params=params)


# -- routing -------------------------------------------------------------------------------


async def post(http: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, dict]:
    async with http.post(url, headers={**AUTH, "Content-Type": "application/yaml"}, data=body) as answer:
        return answer.status, await answer.json()


def candidate(console: ConsoleApp, old: str, new: str) -> bytes:
    text = console.routing_path.read_text()
    assert text.count(old) == 1, old
    return text.replace(old, new).encode()


NEW_PRIO_30 = ("retention: {A: 70, B: 50, old: 40, new: 20,", "retention: {A: 70, B: 50, old: 40, new: 30,")


async def test_routing_shows_the_running_file(console, http):
    body = await get_json(http, console.url + "/routing")
    assert body["file"] == "routing.yaml" and body["text"] == console.routing_path.read_text()
    assert body["changed_since_reload"] is False


async def test_check_lists_every_problem_with_line_and_key(console, http):
    status, body = await post(http, console.url + "/routing/check", candidate(console, *NEW_PRIO_30))
    assert (status, body) == (200, {"ok": True, "problems": []})
    lines = console.routing_path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "mode: retention" in text)
    status, body = await post(http, console.url + "/routing/check",
                              candidate(console, "mode: retention", "mode: sideways"))
    [problem] = body["problems"]
    assert (status, body["ok"], problem["line"], problem["key"]) == (200, False, line, "strategy.mode")
    assert problem["file"] == "<candidate routing.yaml>"


async def test_check_reports_yaml_syntax_with_its_line(console, http):
    status, body = await post(http, console.url + "/routing/check", b"version: 1\ncompany: [unclosed\n")
    assert status == 200 and body["problems"][0]["line"] in (2, 3)
    assert "invalid YAML" in body["problems"][0]["reason"]


async def test_apply_replaces_the_file_and_reloads(console, http):
    new = candidate(console, *NEW_PRIO_30)
    assert console.config.current.policy.strategy.retention.new == 20
    status, body = await post(http, console.url + "/routing/apply", new)
    assert (status, body) == (200, {"ok": True, "error": None})
    assert console.routing_path.read_bytes() == new
    assert console.config.current.policy.strategy.retention.new == 30
    assert not list(console.config_dir.glob(".routing.yaml.*"))  # no temporary file left


async def test_apply_refuses_an_invalid_candidate_and_changes_nothing(console, http):
    before, policy = console.routing_path.read_bytes(), console.config.current.policy
    status, body = await post(http, console.url + "/routing/apply", candidate(console, "mode: retention", "mode: x"))
    assert status == 400 and body["ok"] is False and body["problems"][0]["key"] == "strategy.mode"
    assert console.routing_path.read_bytes() == before and console.config.current.policy is policy


async def test_apply_puts_the_old_file_back_when_the_reload_refuses(console, http):
    before = console.routing_path.read_bytes()
    editor = console.server.app[CONSOLE].routing

    async def refusing() -> dict:  # e.g. the legal-entity directory was edited in between
        return {"ok": False, "error": "routing.yaml:1: x: refused"}
    editor.reload = refusing
    status, body = await post(http, console.url + "/routing/apply", candidate(console, *NEW_PRIO_30))
    assert (status, body) == (400, {"ok": False, "error": "routing.yaml:1: x: refused"})
    assert console.routing_path.read_bytes() == before


async def test_routing_bodies_are_bounded(console, http):
    status, body = await post(http, console.url + "/routing/check", b"#" * (256 * 1024 + 1))
    assert status == 413


async def test_replay_of_a_candidate_shows_the_difference(console, http, redis):
    await seed_log(redis, console.config.current.policy, default_seeds())
    async with http.post(console.url + "/replay?since=24h", headers=AUTH, data=candidate(console, *NEW_PRIO_30)) as answer:
        body = await answer.json()
    assert (body["calls"], body["replayed"], body["changed"]) == (4, 4, 3)
    [change] = body["changes"]
    assert change["from"]["priority"] == 20 and change["to"]["priority"] == 30
