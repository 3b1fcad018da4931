"""The FastAGI server over real sockets, with a client that writes what Asterisk writes."""
from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from agi.server import AgiServer
from ari_app.core.models import (
    CallerProfile, Decision, HistoryClass, HistoryFacts, Reason, RouteStep, Service,
    SourceStatus, StepKind,
)
from ari_app.ops.metrics import Metrics

ENDPOINTS = {"mgr1": "PJSIP/mgr1", "sup1": "PJSIP/sup1"}
SET_RE = re.compile(r'SET VARIABLE (CASELINE_[A-Z_]+) "([^"\\]*)"')
ROUTE = "ok:5::1|m:PJSIP/mgr1:20:1:1:1|q:operators"  # decision() with ENDPOINTS
FALLBACK = "fallback:0::1|q:operators"
READ_TIMEOUT = 5  # only a guard against a hung test; every wait below ends on an event


def environment(script: str = "route", caller: str = "+79161234567",
                uniqueid: str = "1718000000.42", **extra: str) -> bytes:
    headers = {
        "agi_network": "yes",
        "agi_network_script": script,
        "agi_request": f"agi://127.0.0.1:4573/{script}",
        "agi_channel": "PJSIP/trunk-00000001",
        "agi_language": "en",
        "agi_type": "PJSIP",
        "agi_uniqueid": uniqueid,
        "agi_version": "22.1.0",
        "agi_callerid": caller,
        "agi_calleridname": "Client",
        "agi_callingpres": "0",
        "agi_dnid": "9100",
        "agi_rdnis": "unknown",
        "agi_context": "caseline-agi",
        "agi_extension": "s",
        "agi_priority": "3",
        "agi_enhanced": "0.0",
        "agi_accountcode": "",
        "agi_threadid": "140000000000000",
        **extra,
    }
    return "".join(f"{k}: {v}\n" for k, v in headers.items() if v is not None).encode() + b"\n"


def decision() -> Decision:
    return Decision(
        service=Service.MANAGER, priority=5,
        route=(RouteStep(StepKind.MANAGER, "mgr1", 20, on_busy=1, on_no_answer=1, on_unavailable=1),
               RouteStep(StepKind.QUEUE, "operators")),
        reasons=(Reason("case_holder", "the case holder answers"),))


def profile(number: str | None) -> CallerProfile:
    return CallerProfile(number=number, history=HistoryFacts(status=SourceStatus.OK,
                                                             cls=HistoryClass.REPEAT, owner="mgr1"))


class Recorder:
    """A route() that records its calls and answers with a fixed decision."""

    def __init__(self) -> None:
        self.calls: list[tuple[str | None, str]] = []

    async def __call__(self, raw: str | None, call_id: str) -> tuple[CallerProfile, Decision]:
        self.calls.append((raw, call_id))
        return profile(raw), decision()


class FakeAsterisk:
    """One FastAGI connection, seen from Asterisk's side."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.commands: list[str] = []

    @classmethod
    async def connect(cls, port: int) -> FakeAsterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def command(self) -> str | None:
        """The next command line, or None at EOF (the server closed the session)."""
        async with asyncio.timeout(READ_TIMEOUT):
            line = await self.reader.readline()
        return line.decode().rstrip("\n") if line else None

    async def eof(self) -> bytes:
        """Everything the server still sends until it closes the socket."""
        async with asyncio.timeout(READ_TIMEOUT):
            return await self.reader.read()

    async def session(self, env: bytes, answer: Callable[[str], bytes] = lambda _: b"200 result=1\n",
                      ) -> dict[str, str]:
        """Send the environment, answer every command, return the variables set."""
        await self.send(env)
        values: dict[str, str] = {}
        while (line := await self.command()) is not None:
            match = SET_RE.fullmatch(line)
            assert match, f"unexpected command {line!r}"
            self.commands.append(line)
            values[match.group(1)] = match.group(2)
            await self.send(answer(line))
        return values

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Awaitable[AgiServer]]]:
    servers: list[AgiServer] = []

    async def make(route, endpoint_of=ENDPOINTS.get, **kwargs) -> AgiServer:
        server = AgiServer(route, endpoint_of, "127.0.0.1", 0, metrics=Metrics(), **kwargs)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
async def asterisk() -> AsyncIterator[Callable[[int], Awaitable[FakeAsterisk]]]:
    clients: list[FakeAsterisk] = []

    async def connect(port: int) -> FakeAsterisk:
        client = await FakeAsterisk.connect(port)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.close()


def sessions(server: AgiServer, result: str) -> float:
    return server._metrics.registry.get_sample_value("caseline_agi_sessions_total", {"result": result}) or 0


# -- a good session -----------------------------------------------------------------------


async def test_route_session_answers_the_whole_route_in_one_command_and_closes(start, asterisk):
    route = Recorder()
    server = await start(route)
    client = await asterisk(server.port)

    values = await client.session(environment())

    assert route.calls == [("+79161234567", "1718000000.42")]
    assert client.commands == [f'SET VARIABLE CASELINE_ROUTE "{ROUTE}"']  # one round trip
    assert values == {"CASELINE_ROUTE": ROUTE}
    await server.close()
    assert sessions(server, "ok") == 1
    assert server.active_sessions == 0


async def test_script_from_agi_request_when_network_script_is_absent(start, asterisk):
    server = await start(Recorder())
    client = await asterisk(server.port)
    values = await client.session(environment(agi_network_script=None))
    assert values == {"CASELINE_ROUTE": ROUTE}


async def test_hostile_caller_id_reaches_route_as_none(start, asterisk):
    route = Recorder()
    server = await start(route)
    client = await asterisk(server.port)
    values = await client.session(environment(caller='"x" <sip:${SHELL(id)}@evil>', uniqueid="a b"))
    assert values == {"CASELINE_ROUTE": ROUTE}
    raw, call_id = route.calls[0]
    assert raw is None
    assert re.fullmatch(r"agi-[0-9a-f]{32}", call_id)  # made up when agi_uniqueid is odd


async def test_withheld_caller_id(start, asterisk):
    route = Recorder()
    server = await start(route)
    client = await asterisk(server.port)
    await client.session(environment(caller="unknown"))
    assert route.calls[0][0] is None


async def test_trying_line_before_the_answer(start, asterisk):
    server = await start(Recorder())
    client = await asterisk(server.port)
    values = await client.session(environment(), answer=lambda _: b"100 result=0 Trying...\n200 result=1\n")
    assert values == {"CASELINE_ROUTE": ROUTE}


async def test_hostile_values_from_the_decision_are_cleaned(start, asterisk):
    async def route(raw, call_id):
        bad = Decision(Service.MANAGER, 1, (RouteStep(StepKind.MANAGER, 'mgr1",x', 20),
                                            RouteStep(StepKind.QUEUE, "ops${EVIL}")), ())
        return CallerProfile(number=None, history=HistoryFacts(owner='a"\\b\n[c]')), bad

    server = await start(route, endpoint_of=lambda person: "PJSIP/mgr1,,U(x)")
    client = await asterisk(server.port)
    values = await client.session(environment())
    # the endpoint is not a plain Technology/name: sent empty, the dialplan treats the person
    # as unavailable; the queue is no queue name: the dialplan's operators
    assert values == {"CASELINE_ROUTE": "ok:1::1|m::20:::|q:"}


# -- the decision fails: fallback, and the session still answers ---------------------------


async def test_slow_route_falls_back_within_the_bound(start, asterisk):
    never = asyncio.Event()

    async def slow(raw, call_id):
        await never.wait()
        raise AssertionError("unreachable")

    server = await start(slow, route_timeout=0.2)
    client = await asterisk(server.port)
    values = await client.session(environment())
    assert values == {"CASELINE_ROUTE": FALLBACK}
    await server.close()
    assert server._metrics.registry.get_sample_value(
        "caseline_fallbacks_total", {"reason": "agi_route_timeout"}) == 1
    assert sessions(server, "fallback") == 1


async def test_route_bug_falls_back(start, asterisk, caplog):
    async def broken(raw, call_id):
        raise KeyError("bug")

    server = await start(broken)
    client = await asterisk(server.port)
    values = await client.session(environment())
    assert values == {"CASELINE_ROUTE": FALLBACK}
    assert "decision failed" in caplog.text


async def test_endpoint_of_bug_falls_back(start, asterisk):
    def broken(person: str) -> str | None:
        raise RuntimeError("directory broken")

    server = await start(Recorder(), endpoint_of=broken)
    client = await asterisk(server.port)
    values = await client.session(environment())
    assert values == {"CASELINE_ROUTE": FALLBACK}


async def test_unknown_script_only_sets_the_status(start, asterisk):
    route = Recorder()
    server = await start(route)
    client = await asterisk(server.port)
    values = await client.session(environment(script="admin"))
    assert values == {"CASELINE_STATUS": "unknown_script"}
    assert route.calls == []


# -- hostile or broken peers --------------------------------------------------------------


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\n",  # an empty environment
    b"agi_network: yes\n" + b"a" * 5000 + b"\n\n",  # oversized line
    b"".join(b"agi_arg_%d: x\n" % i for i in range(100)) + b"\n",  # too many lines
    b"agi_network: yes\nagi_x: a\x00b\n\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n",  # a TLS hello
])
async def test_garbage_is_closed_without_a_word(start, asterisk, garbage):
    route = Recorder()
    server = await start(route)
    client = await asterisk(server.port)
    await client.send(garbage)
    assert await client.eof() == b""
    await server.close()
    assert route.calls == []
    assert sessions(server, "bad_request") == 1


async def test_truncated_environment_then_eof(start, asterisk):
    route = Recorder()
    server = await start(route)
    client = await asterisk(server.port)
    await client.send(b"agi_network: yes\nagi_network_scr")
    client.writer.write_eof()
    assert await client.eof() == b""
    assert route.calls == []


async def test_environment_that_never_ends_times_out(start, asterisk):
    server = await start(Recorder(), header_timeout=0.2)
    client = await asterisk(server.port)
    await client.send(b"agi_network: yes\n")
    assert await client.eof() == b""  # closed by the server after header_timeout
    await server.close()
    assert sessions(server, "timeout") == 1


@pytest.mark.parametrize(("reply", "result"), [
    (b"HANGUP\n", "hangup"),
    (b"511 Command Not Permitted on a dead channel or intercept routine\n", "hangup"),
    (b"510 Invalid or unknown command\n", "error"),
    (b"520-Invalid command syntax.  Proper usage follows:\nUsage: SET VARIABLE\n520 End of proper usage.\n",
     "error"),
])
async def test_session_ends_at_the_first_refused_command(start, asterisk, reply, result):
    server = await start(Recorder())
    client = await asterisk(server.port)
    await client.send(environment())
    assert (await client.command()).startswith("SET VARIABLE CASELINE_ROUTE ")
    await client.send(reply)
    assert await client.eof() == b""  # no further command after the refusal
    await server.close()
    assert sessions(server, result) == 1


async def test_hangup_line_before_the_answer(start, asterisk):
    # Asterisk writes HANGUP asynchronously, so it can precede the command's own answer
    server = await start(Recorder())
    client = await asterisk(server.port)
    await client.send(environment())
    await client.command()
    await client.send(b"HANGUP\n200 result=1\n")
    assert await client.eof() == b""
    await server.close()
    assert sessions(server, "hangup") == 1


async def test_eof_mid_session(start, asterisk):
    server = await start(Recorder())
    client = await asterisk(server.port)
    await client.send(environment())
    await client.command()
    client.writer.write_eof()  # Asterisk is gone without a word
    assert await client.eof() == b""
    await server.close()
    assert sessions(server, "hangup") == 1


async def test_peer_that_never_answers_a_command(start, asterisk):
    server = await start(Recorder(), command_timeout=0.2)
    client = await asterisk(server.port)
    await client.send(environment())
    await client.command()
    assert await client.eof() == b""
    await server.close()
    assert sessions(server, "timeout") == 1


async def test_a_session_ends_at_its_deadline_while_the_decision_is_still_allowed_to_run(start, asterisk):
    """The route and each command have their own bounds; the session's bounds the whole."""
    async def stuck(raw, call_id):
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    server = await start(stuck, route_timeout=60, session_timeout=0.2)
    client = await asterisk(server.port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await client.send(environment())
    assert await client.eof() == b""
    assert loop.time() - started < 2
    await server.close()
    assert sessions(server, "timeout") == 1


async def test_a_session_ends_at_its_deadline_while_a_command_is_still_allowed_to_wait(start, asterisk):
    server = await start(Recorder(), command_timeout=60, session_timeout=0.2)
    client = await asterisk(server.port)
    await client.send(environment())
    assert await client.command() == f'SET VARIABLE CASELINE_ROUTE "{ROUTE}"'
    assert await client.eof() == b""  # never answered: closed at the session's deadline
    await server.close()
    assert sessions(server, "timeout") == 1


async def test_each_decision_is_handed_on_with_what_the_dialplan_got(start, asterisk):
    from ari_app.record.agi_calls import AgiCalls

    calls = AgiCalls(None, None, lambda: None)
    server = await start(Recorder(), calls=calls)
    client = await asterisk(server.port)
    await client.session(environment(uniqueid="1718000000.7"))
    kept = calls.open["1718000000.7"]
    assert kept.program.encode() == ROUTE and kept.decision == decision()
    assert kept.profile.number == "+79161234567" and kept.decide_ms >= 0


@pytest.mark.parametrize("trail", ["0p.1=2.", "0p;DROP"])
async def test_the_callback_script_files_through_calls_and_names_the_request(start, asterisk, trail):
    filed: list[tuple[str, str]] = []

    class Filing:
        def decided(self, *args) -> None:
            pass

        async def file_callback(self, call_id: str, trail: str) -> str:
            filed.append((call_id, trail))
            return "a1b2c3d4e5"

    server = await start(Recorder(), calls=Filing())
    client = await asterisk(server.port)
    values = await client.session(environment(script="callback", uniqueid="1718000000.8", agi_arg_1=trail))
    assert values == {"CASELINE_FILED": "a1b2c3d4e5"}
    assert filed == [("1718000000.8", trail if ";" not in trail else "")]  # a garbled trail: none
    await server.close()
    assert sessions(server, "callback") == 1


async def test_the_callback_script_without_a_decision_files_nothing(start, asterisk):
    from ari_app.record.agi_calls import AgiCalls

    server = await start(Recorder(), calls=AgiCalls(None, None, lambda: None))
    client = await asterisk(server.port)
    values = await client.session(environment(script="callback", agi_arg_1="0p."))
    assert values == {"CASELINE_FILED": ""}  # the dialplan: the operators


async def test_connection_reset_by_peer(start):
    server = await start(Recorder())
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(environment())
    await writer.drain()
    await reader.readline()
    writer.transport.abort()  # RST instead of FIN
    await server.close(grace_s=READ_TIMEOUT)
    assert server.active_sessions == 0


# -- many sessions, shutdown and leaks ----------------------------------------------------


async def test_200_concurrent_sessions_all_answered_closed_and_no_task_leaks(start):
    before = asyncio.all_tasks()
    route = Recorder()
    server = await start(route)

    async def one(i: int) -> dict[str, str]:
        client = await FakeAsterisk.connect(server.port)
        try:
            return await client.session(environment(caller=f"+7916{i:07d}", uniqueid=f"1718000000.{i}"))
        finally:
            await client.close()

    results = await asyncio.gather(*(one(i) for i in range(200)))
    assert all(values == {"CASELINE_ROUTE": ROUTE} for values in results)
    assert sorted(call_id for _, call_id in route.calls) == sorted(f"1718000000.{i}" for i in range(200))
    await server.close()
    assert server.active_sessions == 0
    assert sessions(server, "ok") == 200
    assert asyncio.all_tasks() - before == set()


async def test_close_cancels_sessions_stuck_in_route(start):
    before = asyncio.all_tasks()
    entered = asyncio.Event()
    count = 0

    async def stuck(raw, call_id):
        nonlocal count
        count += 1
        if count == 20:
            entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    server = await start(stuck, route_timeout=60)
    clients = [await FakeAsterisk.connect(server.port) for _ in range(20)]
    for client in clients:
        await client.send(environment())
    async with asyncio.timeout(READ_TIMEOUT):
        await entered.wait()
    assert server.active_sessions == 20

    await server.close()
    for client in clients:
        assert await client.eof() == b""
        await client.close()
    assert server.active_sessions == 0
    assert sessions(server, "cancelled") == 20
    assert asyncio.all_tasks() - before == set()


async def test_grace_lets_running_sessions_finish(start, asterisk):
    release = asyncio.Event()
    entered = asyncio.Event()

    async def gated(raw, call_id):
        entered.set()
        await release.wait()
        return profile(raw), decision()

    server = await start(gated, route_timeout=60)
    client = await asterisk(server.port)
    session = asyncio.create_task(client.session(environment()))
    async with asyncio.timeout(READ_TIMEOUT):
        await entered.wait()
    closing = asyncio.create_task(server.close(grace_s=READ_TIMEOUT))
    release.set()
    values = await session
    await closing
    assert values == {"CASELINE_ROUTE": ROUTE}


async def test_connections_over_the_limit_are_refused(start, asterisk):
    entered = asyncio.Event()

    async def stuck(raw, call_id):
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    server = await start(stuck, max_sessions=1, route_timeout=60)
    first = await asterisk(server.port)
    await first.send(environment())
    async with asyncio.timeout(READ_TIMEOUT):
        await entered.wait()
    second = await asterisk(server.port)
    with contextlib.suppress(ConnectionResetError):  # refused with a reset: just as good
        assert await second.eof() == b""
    await server.close()
    assert sessions(server, "rejected") == 1


async def test_binds_loopback_by_default():
    server = AgiServer(Recorder(), ENDPOINTS.get, port=0)
    await server.start()
    try:
        assert server._server.sockets[0].getsockname()[0] == "127.0.0.1"
        assert server.port > 0
    finally:
        await server.close()
