"""Hostile caller IDs (and hostile Asterisk answers) through the FastAGI server, over a real
socket, with the REAL core behind it: Router + RedisHistoryStore on a real redis-server +
the file CRM from config/clients.yaml + LiveConfig from config/routing.yaml, wired with the
same functions `ari_app.main` uses (agi_route, agi_endpoint_of).

Each session must end with the socket closed by the server; every command written back must
be a `SET VARIABLE CASELINE_* "<whitelisted>"` line (a route: the grammar of
core/route_program.py, every name of the dialplan's character set); the only Redis keys afterwards are
`caseline:hist:+<digits>`; every log line is one printable-ASCII JSON line without raw
CR/LF, injected text or a full caller number.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from redis.asyncio import Redis

from agi.protocol import MAX_LINE_BYTES
from agi.server import AgiServer
from agi.variables import NAMES
from ari_app.core.clock import FixedClock
from ari_app.core.models import CallerProfile, Contact, Decision, Direction
from ari_app.crm.factory import build_crm
from ari_app.crm.adapters.http import HttpCrm
from ari_app.crm.service import CrmService
from ari_app.config.crm_settings import HttpCrmSettings
from ari_app.history.cdr import import_cdr_file
from ari_app.history.store import RedisHistoryStore
from ari_app.main import agi_endpoint_of, agi_route
from ari_app.ops.logs import log_decision
from ari_app.ops.metrics import Metrics
from ari_app.config.live import LiveConfig
from ari_app.router import Router
from ari_app.config.settings import load_settings

from tests.support.hostile_inputs import (
    HISTORY_KEY_RE,
    HOSTILE_CALLER_IDS,
    VALID_CALLER_IDS,
    Hostile,
    hostile_id,
    national_digits,
)

CONFIG = Path(__file__).resolve().parents[2] / "config"
GUARD_S = 5.0  # only a guard against a hung test: every wait ends on an event (EOF, a line)

# What the server may write: exactly this, nothing else (agi/variables.py's whitelists).
COMMAND_RE = re.compile(r'SET VARIABLE (CASELINE_[A-Z_]+) "([A-Za-z0-9_:|/=.*#@-]*)"')
_NAME, _N = r"[A-Za-z0-9_-]+", r"[0-9]{0,3}"
_SOUND = rf"{_NAME}(/{_NAME})*"
_STEP = (rf"m:([A-Za-z0-9]+/{_NAME})?:[0-9]{{1,3}}:{_N}:{_N}:{_N}|q:({_NAME})?|p:({_SOUND})?|"
         rf"i:({_SOUND})?:({_SOUND})?:{_N}:{_N}:{_N}:[0-9*#]+={_N}(/[0-9*#]+={_N})*:{_N}|"
         rf"v:({_NAME}(@{_NAME})?)?|c:({_SOUND})?|x")
VALUE_RULES = {  # what the dialplan's REGEX and FILTER let through
    "CASELINE_ROUTE": re.compile(rf"(ok|fallback|shed):[0-9]{{1,3}}:({_NAME})?:[01](\|({_STEP}))*"),
    "CASELINE_STATUS": re.compile(r"unknown_script"),
}
DIALLABLE = {"PJSIP/mgr1", "PJSIP/mgr2", "PJSIP/mgr3", "PJSIP/sup1"}


def endpoints(route: str) -> set[str]:
    return {step.split(":")[1] for step in route.split("|")[1:] if step.startswith("m:")} - {""}
PRESEEDED = "+79161234567"


def expectation(hostile: Hostile) -> str:
    """decided | refused | injected: what the server can do with this caller ID on the wire."""
    if hostile.wire_safe:
        return "decided"
    line = hostile.raw + b"\n"
    if b"\x00" in line or len(line) > MAX_LINE_BYTES or re.search(rb"\r(?!\n)", line):
        return "refused"
    return "injected"


def working_hours_clock() -> FixedClock:
    """A recent Wednesday, 11:00 in Moscow: open, inside history retention, not a holiday."""
    day = datetime.now(UTC).date() - timedelta(days=1)
    while day.weekday() != 2:
        day -= timedelta(days=1)
    return FixedClock(datetime(day.year, day.month, day.day, 8, 0, tzinfo=UTC))


@dataclass
class Core:
    server: AgiServer
    history: RedisHistoryStore
    crm: CrmService
    clock: FixedClock
    identified: list[str | None] = field(default_factory=list)


@contextlib.asynccontextmanager
async def real_core(redis: Redis, crm_client: object = None) -> AsyncIterator[Core]:
    """The shipped config, wired like ari_app.main.build_core; the file CRM unless given one."""
    settings = load_settings(CONFIG, env={})
    assert settings.crm.adapter == "file"  # the shipped config: config/clients.yaml
    history = RedisHistoryStore.from_settings(redis, settings.history)
    if crm_client is None:
        crm_client = build_crm(settings.crm, CONFIG, env={})
    crm = CrmService.from_settings(settings.crm, crm_client)  # type: ignore[arg-type]
    config = LiveConfig(CONFIG / settings.routing_file, CONFIG / settings.legal_entities_file, crm)
    clock = working_hours_clock()
    router = Router(config=config, history=history, crm=crm.facts, clock=clock,
                    windows=settings.history.windows(),
                    history_budget_s=settings.history_budget_ms / 1000,
                    crm_budget_s=settings.crm.budget_ms / 1000,
                    default_region=settings.numbers.default_region)
    real_route = agi_route(router)
    identified: list[str | None] = []

    async def route(raw: str | None, call_id: str) -> tuple[CallerProfile, Decision]:
        profile, decision = await real_route(raw, call_id)
        identified.append(profile.number)
        # What the ARI app does with every decision and outcome: a decision log line, and
        # the call recorded in history under the identified number.
        log_decision(call_id, profile, decision, 0.001)
        if profile.number is not None:
            await history.record(profile.number, Contact(clock.now(), Direction.INBOUND, False))
        return profile, decision

    # A client with history, so a hostile FLUSHALL or key injection would show.
    await history.record(PRESEEDED, Contact(clock.now() - timedelta(days=3), Direction.INBOUND, True, "mgr1", 60))
    server = AgiServer(route, agi_endpoint_of(config), "127.0.0.1", 0, metrics=Metrics(),
                       route_timeout=5.0, header_timeout=2.0, command_timeout=2.0)
    await server.start()
    try:
        yield Core(server, history, crm, clock, identified)
    finally:
        await server.close()
        await crm.aclose()


@pytest.fixture
async def core(redis: Redis) -> AsyncIterator[Core]:
    async with real_core(redis) as built:
        yield built


def environment(caller: bytes, **overrides: bytes) -> bytes:
    headers: dict[str, bytes] = {
        "agi_network": b"yes",
        "agi_network_script": b"route",
        "agi_request": b"agi://127.0.0.1:4573/route",
        "agi_channel": b"PJSIP/trunk-00000001",
        "agi_language": b"en",
        "agi_type": b"PJSIP",
        "agi_uniqueid": b"1718000000.42",
        "agi_version": b"22.1.0",
        "agi_callerid": caller,
        "agi_calleridname": caller,
        "agi_callingpres": b"0",
        "agi_dnid": b"9100",
        "agi_rdnis": b"unknown",
        "agi_context": b"caseline-agi",
        "agi_extension": b"s",
        "agi_priority": b"3",
        "agi_enhanced": b"0.0",
        "agi_accountcode": b"",
        "agi_threadid": b"140000000000000",
        **overrides,
    }
    return b"".join(k.encode() + b": " + v + b"\n" for k, v in headers.items()) + b"\n"


async def run_session(port: int, data: bytes,
                      answer: Callable[[str], bytes] = lambda _: b"200 result=1\n") -> list[str]:
    """Play Asterisk: send `data`, answer every command, return the commands once the server
    has closed the socket (a server that never closes fails the guard)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    commands: list[str] = []
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(GUARD_S):
            while line := await reader.readline():
                assert line.endswith(b"\n"), f"unterminated command {line[:100]!r}"
                text = line[:-1].decode("ascii")  # a non-ASCII byte fails here, loudly
                commands.append(text)
                with contextlib.suppress(ConnectionError):
                    writer.write(answer(text))
                    await writer.drain()
            assert await reader.read() == b""  # EOF: the server closed the session
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return commands


def check_commands(commands: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for command in commands:
        match = COMMAND_RE.fullmatch(command)
        assert match, f"command outside the grammar: {command[:200]!r}"
        name, value = match.groups()
        assert name in NAMES, name
        assert "${" not in value and '"' not in value and "\\" not in value
        rule = VALUE_RULES.get(name)
        assert rule is None or rule.fullmatch(value), f"{name}={value!r}"
        values[name] = value
    return values


async def history_keys(redis: Redis) -> list[bytes]:
    return [key async for key in redis.scan_iter(match="*", count=1000)]


async def assert_only_history_keys(redis: Redis, *required: str) -> None:
    keys = await history_keys(redis)
    for key in keys:
        assert HISTORY_KEY_RE.fullmatch(key), f"unexpected Redis key {key[:100]!r}"
    for number in required:
        assert f"caseline:hist:{number}".encode() in keys, f"{number} lost its history"


# -- hostile caller IDs through the real core --------------------------------------------------


@pytest.mark.parametrize("hostile", HOSTILE_CALLER_IDS, ids=hostile_id)
async def test_hostile_caller_id_is_routed_safely(hostile: Hostile, core: Core, redis: Redis,
                                                  json_logs) -> None:
    commands = await run_session(core.server.port, environment(hostile.raw))
    values = check_commands(commands)

    kind = expectation(hostile)
    if kind == "decided":
        # A well-formed session: the real core decided (not the fallback), for an unknown caller.
        assert list(values) == ["CASELINE_ROUTE"]
        assert values["CASELINE_ROUTE"].startswith("ok:"), values
        assert core.identified == [None], "a hostile caller ID was taken for a number"
    elif kind == "refused":
        # NUL, a bare CR or an oversized line: not AGI; closed without a word (the dialplan
        # then has no route and sends the call to the operators).
        assert commands == []
        assert core.identified == []
    else:
        # A line feed inside the caller ID splits Asterisk's header line: what follows it is
        # read as further header lines (or as answers, which ends the session). The caller
        # can at most pick their own caller ID, which they can do anyway (caller ID is not
        # authenticated); whatever was picked is still a strict E.164 number or nothing.
        assert all(n is None or n == PRESEEDED for n in core.identified), core.identified
    assert core.server.active_sessions == 0
    await assert_only_history_keys(redis, PRESEEDED)
    forbidden = [hostile.marker or "", national_digits(PRESEEDED)]
    lines = json_logs.assert_clean(forbidden=forbidden)
    if kind == "decided":
        assert any('"event":"decision"' in line for line in lines)  # the check had something to check


@pytest.mark.parametrize(("raw", "e164"), VALID_CALLER_IDS, ids=[v[0] for v in VALID_CALLER_IDS])
async def test_real_numbers_get_a_history_key_and_masked_logs(raw: str, e164: str, core: Core,
                                                              redis: Redis, json_logs) -> None:
    values = check_commands(await run_session(core.server.port, environment(raw.encode())))
    assert values["CASELINE_ROUTE"].startswith("ok:")
    assert core.identified == [e164]
    if e164 == PRESEEDED:  # an A client of mgr1 during working hours: ring mgr1 first
        assert values["CASELINE_ROUTE"].split("|")[1].startswith("m:PJSIP/mgr1:")
    await assert_only_history_keys(redis, PRESEEDED, e164)
    lines = json_logs.assert_clean(forbidden=[national_digits(e164), raw])
    assert any(f'"caller":"***{e164[-4:]}"' in line for line in lines)


async def test_many_hostile_sessions_at_once(core: Core, redis: Redis) -> None:
    """All of them concurrently, plus real callers: no crosstalk, every session closed."""
    sessions = [environment(h.raw, agi_uniqueid=f"1718000000.{i}".encode())
                for i, h in enumerate(HOSTILE_CALLER_IDS)]
    sessions += [environment(raw.encode()) for raw, _ in VALID_CALLER_IDS]
    results = await asyncio.gather(*(run_session(core.server.port, s) for s in sessions))
    for commands in results:
        check_commands(commands)
    valid = {e for _, e in VALID_CALLER_IDS}
    numbers = [n for n in core.identified if n]
    assert valid <= set(numbers)
    # besides the real callers, only a number spoofed through a split header line
    injected = sum(expectation(h) == "injected" for h in HOSTILE_CALLER_IDS)
    assert len(numbers) <= len(valid) + injected
    assert set(numbers) <= valid
    assert core.server.active_sessions == 0
    await assert_only_history_keys(redis, PRESEEDED, *(e for _, e in VALID_CALLER_IDS))


# -- hostile values in the other headers --------------------------------------------------------

OTHER_HEADERS = {
    "script_traversal": {"agi_network_script": b"../route", "agi_request": b"agi://127.0.0.1/../route"},
    "script_with_query": {"agi_network_script": b"", "agi_request": b"agi://127.0.0.1:4573/route?x=${SHELL(id)}"},
    "script_injection": {"agi_network_script": b"route;${SHELL(id)}"},
    "script_non_ascii": {"agi_network_script": "маршрут".encode()},
    "uniqueid_injection": {"agi_uniqueid": b'1.2" ${SHELL(id)}'},
    "uniqueid_long": {"agi_uniqueid": b"9" * 900},
    "channel_injection": {"agi_channel": b"PJSIP/evil&Local/x@y"},
    "unknown_header_flood": {f"agi_arg_{i}": b"x" * 10 for i in range(40)},
    "request_bad_ipv6": {"agi_network_script": b"", "agi_request": b"agi://[::1/route"},
}


@pytest.mark.parametrize("headers", OTHER_HEADERS.values(), ids=list(OTHER_HEADERS))
async def test_hostile_other_headers(headers: dict[str, bytes], core: Core, redis: Redis, json_logs) -> None:
    commands = await run_session(core.server.port, environment(b"+79161234567", **headers))
    values = check_commands(commands)
    assert values.get("CASELINE_STATUS", "ok") == "unknown_script" or values.get("CASELINE_ROUTE", "ok").startswith("ok")
    assert core.server.active_sessions == 0
    await assert_only_history_keys(redis, PRESEEDED)
    json_logs.assert_clean(forbidden=["${SHELL", "PJSIP/evil", national_digits(PRESEEDED)])


@pytest.mark.parametrize("data", [
    b"",  # connect and close
    b"agi_network: yes\n",  # EOF before the blank line
    b"\n",  # an empty environment
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # not AGI at all
    b"agi_network: yes\n" * 100 + b"\n",  # too many lines
    b"agi_x: " + b"y" * (MAX_LINE_BYTES + 10) + b"\n\n",  # one oversized line
    b"agi_x: y" + b"z" * 70_000,  # no newline at all, over the stream limit
    b"\x00\x01\x02\xff" * 64 + b"\n\n",  # binary
    b"*1\r\n$8\r\nFLUSHALL\r\n",  # Redis protocol
], ids=["nothing", "truncated", "empty_env", "http", "too_many", "long_line", "no_newline", "binary", "resp"])
async def test_garbage_instead_of_an_environment(data: bytes, core: Core, redis: Redis, json_logs) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", core.server.port)
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()  # Asterisk is done talking: the server must not wait for more
        async with asyncio.timeout(GUARD_S):
            assert await reader.read() == b""  # closed, and nothing was set
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert core.identified == []
    await assert_only_history_keys(redis, PRESEEDED)
    json_logs.assert_clean(forbidden=["FLUSHALL"])
    assert not [r for r in json_logs.records if r.levelname in ("ERROR", "CRITICAL")]


async def test_a_silent_peer_is_dropped_after_the_header_timeout(redis: Redis) -> None:
    """Slowloris: one byte and then silence. The server closes; nothing else is needed."""
    async def never(raw: str | None, call_id: str) -> tuple[CallerProfile, Decision]:
        raise AssertionError("route() must not be called")

    async with AgiServer(never, lambda _: None, "127.0.0.1", 0, header_timeout=0.2) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"agi_network: yes\nagi_")
        await writer.drain()
        async with asyncio.timeout(GUARD_S):
            assert await reader.read() == b""
        writer.close()
        assert server.active_sessions == 0


async def test_connection_flood_is_capped(core: Core) -> None:
    """Connections beyond max_sessions are refused at once; the admitted ones still work."""
    server = core.server
    server.max_sessions = 3
    idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        async with asyncio.timeout(GUARD_S):
            with contextlib.suppress(ConnectionError):
                assert await reader.read() == b""  # aborted: EOF or reset
        writer.close()
    finally:
        for _, w in idle:
            w.write(environment(b"+79031112233"))
        for r, w in idle:
            async with asyncio.timeout(GUARD_S):
                while line := await r.readline():
                    check_commands([line[:-1].decode("ascii")])
                    w.write(b"200 result=1\n")
            w.close()


# -- hostile answers from "Asterisk" ------------------------------------------------------------

ANSWERS: dict[str, Callable[[str], bytes]] = {
    "hangup": lambda _: b"HANGUP\n",
    "dead_channel": lambda _: b"511 Command Not Permitted on a dead channel or intercept routine\n",
    "invalid_command": lambda _: b"510 Invalid or unknown command\n",
    "usage_never_ends": lambda _: b"520-Invalid command syntax.\n" + b"Usage: x\n" * 100,
    "injection_in_result": lambda _: b"200 result=1 (${SHELL(rm -rf /)}) \"quoted\"\n",
    "unknown_code": lambda _: b"999 what\n",
    "garbage": lambda _: b"\xff\xfe\x00garbage\n",
    "cr_inside": lambda _: b"200 result=1\rSET VARIABLE X 1\n",
    "huge_line": lambda _: b"200 result=" + b"1" * 20_000 + b"\n",
    "trying_forever": lambda _: b"100 result=0 Trying...\n" * 70,
    "redis_protocol": lambda _: b"*1\r\n$8\r\nFLUSHALL\r\n",
}


@pytest.mark.parametrize("answer", ANSWERS.values(), ids=list(ANSWERS))
async def test_hostile_answers_end_the_session(answer: Callable[[str], bytes], core: Core,
                                               redis: Redis, json_logs) -> None:
    commands = await run_session(core.server.port, environment(b"+79031112233"), answer)
    check_commands(commands)
    assert len(commands) <= 1 or answer is ANSWERS["injection_in_result"]  # stopped at the first bad answer
    assert core.server.active_sessions == 0
    await assert_only_history_keys(redis, PRESEEDED, "+79031112233")
    json_logs.assert_clean(forbidden=["${SHELL", "FLUSHALL", national_digits("+79031112233")])
    # a failure of the peer is not a failure of ours: no traceback
    assert not [r for r in json_logs.records if r.exc_info and r.name.startswith("caseline")]


# -- hostile caller IDs in the history bootstrap, into the same real Redis ------------------------


async def test_cdr_import_of_hostile_sources_creates_only_history_keys(core: Core, redis: Redis,
                                                                      tmp_path: Path) -> None:
    at = core.clock.now().strftime("%Y-%m-%d %H:%M:%S")

    def row(src: str, dst: str = "74950001122", context: str = "inbound",
            channel: str = "PJSIP/trunk-0000001a") -> str:
        fields = ["", src, dst, context, src, channel, "PJSIP/101-0000001b", "Dial", "PJSIP/101,30",
                  at, at, at, "30", "20", "ANSWERED", "DOCUMENTATION", "1714554902.26", ""]
        return ",".join('"' + f.replace('"', '""') + '"' for f in fields)

    lines = [row(h.replaced) for h in HOSTILE_CALLER_IDS]
    # and as the destination of a manager's outbound call
    lines += [row("101", h.replaced, "from-internal", "PJSIP/101-00000021") for h in HOSTILE_CALLER_IDS]
    lines.append(row("89031112233"))
    path = tmp_path / "Master.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")
                     + b"\xff\xfe\x00\r\n")
    report = await import_cdr_file(path, core.history, managers={"101": "mgr1"})
    assert report.rows == report.inbound + report.outbound + report.skipped + report.bad + report.merged
    assert report.inbound >= 1
    await assert_only_history_keys(redis, PRESEEDED, "+79031112233")


# -- hostile values from the sources behind the core (a CRM answer, a history entry) -------------


@pytest.mark.parametrize("hostile", HOSTILE_CALLER_IDS, ids=hostile_id)
async def test_hostile_crm_and_history_values_never_reach_the_channel_raw(hostile: Hostile, redis: Redis,
                                                                          json_logs) -> None:
    """A CRM names a "responsible" manager and history names who answered last: both drive
    the route. Hostile values there never become an endpoint, a queue or a sound."""
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"id": "C-1", "name": hostile.text, "status": hostile.text, "abc": "A",
                                  "responsible": hostile.text, "open_claims": 1})

    app = web.Application()
    app.router.add_get("/clients/{number}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    crm_client = HttpCrm(HttpCrmSettings(url_template=f"http://127.0.0.1:{runner.addresses[0][1]}/clients/{{number}}"))
    try:
        async with real_core(redis, crm_client) as built:
            caller = "+79031112233"
            # a callback from a manager the history names (callback beats CRM: OWNER = history)
            await built.history.record(caller, Contact(built.clock.now() - timedelta(minutes=10),
                                                       Direction.OUTBOUND, False, hostile.replaced or "x"))
            values = check_commands(await run_session(built.server.port, environment(caller.encode())))
    finally:
        await runner.cleanup()
    assert values["CASELINE_ROUTE"].startswith("ok:")
    assert endpoints(values["CASELINE_ROUTE"]) <= DIALLABLE
    await assert_only_history_keys(redis, PRESEEDED, caller)
    # CRM and history values do show in the decision line (as data, escaped and bounded):
    # what must hold there is one clean line each and a masked caller.
    json_logs.assert_clean(forbidden=[national_digits(caller)])
