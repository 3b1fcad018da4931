"""Property-based fuzzing of the FastAGI wire parser (agi/protocol.py) and of the server on
a real socket: arbitrary bytes never raise anything but the documented AgiError
subclasses, and every parse is bounded in time.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agi.protocol import (
    MAX_HEADER_LINES,
    MAX_LINE_BYTES,
    MAX_RESPONSE_LINE_BYTES,
    MAX_RESPONSE_LINES,
    AgiConnectionClosed,
    AgiDeadChannel,
    AgiError,
    AgiHangup,
    AgiInvalidCommand,
    AgiProtocolError,
    AgiResponse,
    AgiUsageError,
    HeaderParser,
    ResponseParser,
    decode_line,
    parse_headers,
    parse_response,
    script_name,
)
from agi.server import AgiServer
from agi.variables import (
    sanitize_call_id,
    sanitize_caller_id,
    set_variable_command,
)
from ari_app.core.models import CallerProfile, Decision, Service
from tests.support.hostile_inputs import FUZZ, FUZZ_SLOW, HOSTILE_CALLER_IDS

DOCUMENTED = (AgiProtocolError, AgiConnectionClosed, AgiHangup, AgiDeadChannel, AgiInvalidCommand, AgiUsageError)
PARSE_BOUND_S = 0.25  # one line or one environment; real parses take microseconds

HEADER_LINE = st.one_of(
    st.binary(max_size=MAX_LINE_BYTES + 40),
    st.builds(lambda k, v: b"agi_" + k + b": " + v + b"\n",
              st.binary(max_size=45), st.binary(max_size=200)),
    st.sampled_from([h.raw for h in HOSTILE_CALLER_IDS]).map(lambda raw: b"agi_callerid: " + raw + b"\n"),
    st.sampled_from([b"\n", b"\r\n", b"agi_network: yes\n", b"agi_request: agi://127.0.0.1/route\n",
                     b"agi_x:" + b"y" * MAX_LINE_BYTES + b"\n", b"\x00\n", b"HANGUP\n"]),
)
RESPONSE_LINE = st.one_of(
    st.text(max_size=200),
    st.from_regex(r"\A[0-9]{3}( .{0,60})?\Z"),
    st.builds(lambda r, d, x: f"200 result={r} ({d}){x}", st.text(max_size=20), st.text(max_size=20),
              st.text(max_size=20)),
    st.sampled_from(["HANGUP", " HANGUP ", "100 result=0 Trying...", "200 result=1", "200", "200 result=",
                     "510 Invalid", "511 dead", "520 bad", "520-Invalid command syntax.",
                     "Usage: x", "520 End of proper usage.", "x520 End of proper usage.", "999 what", "2000"]),
)


def timed(fn, *args):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    try:
        return fn(*args)
    finally:
        assert time.perf_counter() - started < PARSE_BOUND_S, "parse took too long"


@FUZZ
@given(st.binary(max_size=MAX_RESPONSE_LINE_BYTES + 100), st.sampled_from([MAX_LINE_BYTES, MAX_RESPONSE_LINE_BYTES]))
@example(b"agi_callerid: +79161234567\r\n", MAX_LINE_BYTES)
@example(b"x" * (MAX_LINE_BYTES + 1) + b"\n", MAX_LINE_BYTES)
@example(b"\xff\xfe\n", MAX_LINE_BYTES)
def test_decode_line_only_raises_protocol_errors(raw: bytes, limit: int) -> None:
    try:
        line = timed(decode_line, raw, limit)
    except AgiProtocolError:
        return
    assert "\n" not in line and "\r" not in line and "\x00" not in line
    assert len(line) <= limit + 1


@FUZZ
@given(st.lists(HEADER_LINE, max_size=MAX_HEADER_LINES + 5))
def test_header_parser_only_raises_documented_errors(lines: list[bytes]) -> None:
    parser = HeaderParser()
    started = time.perf_counter()
    try:
        for raw in lines:
            if parser.feed(decode_line(raw if raw.endswith(b"\n") else raw + b"\n")):
                break
    except AgiError as e:
        assert isinstance(e, AgiProtocolError), type(e)
        return
    finally:
        assert time.perf_counter() - started < PARSE_BOUND_S * 4
    assert len(parser.headers) <= MAX_HEADER_LINES
    for name, value in parser.headers.items():
        assert name.startswith("agi_") and name.isascii() and len(name) <= 44
        assert "\n" not in value and "\r" not in value
    name = script_name(parser.headers)
    assert name is None or (name.isascii() and "/" not in name and "." not in name and len(name) <= 64)
    caller = sanitize_caller_id(parser.headers.get("agi_callerid"))
    assert caller is None or (caller.isascii() and caller.isprintable() and len(caller) <= 64)
    assert not (caller and any(c in caller for c in "\"'$\\{}[];,&|"))
    call_id = sanitize_call_id(parser.headers.get("agi_uniqueid"))
    assert call_id is None or (call_id.isascii() and len(call_id) <= 64)


@FUZZ
@given(st.lists(st.text(max_size=80), max_size=6), st.text(max_size=300))
def test_parse_headers_and_script_name_never_raise_other_errors(lines: list[str], request: str) -> None:
    try:
        parse_headers([*lines, ""])
    except AgiProtocolError:
        pass
    name = script_name({"agi_request": "agi://" + request, "agi_network_script": ""})
    assert name is None or (name.isascii() and len(name) <= 64)


@FUZZ
@given(st.lists(RESPONSE_LINE, min_size=1, max_size=MAX_RESPONSE_LINES + 5))
@example(["520-Invalid command syntax.", "Usage: SET VARIABLE", "520 End of proper usage."])
@example(["100 result=0 Trying..."] * (MAX_RESPONSE_LINES + 1))
def test_response_parser_only_raises_documented_errors(lines: list[str]) -> None:
    parser = ResponseParser()
    started = time.perf_counter()
    try:
        for line in lines:
            response = parser.feed(line)
            if response is not None:
                assert isinstance(response, AgiResponse) and response.code == 200
                break
    except AgiError as e:
        assert isinstance(e, DOCUMENTED), type(e)
    finally:
        assert time.perf_counter() - started < PARSE_BOUND_S * 4
    try:
        parse_response(lines)
    except AgiError as e:
        assert isinstance(e, DOCUMENTED), type(e)


def test_pathological_response_lines_are_fast() -> None:
    """Long lines built to make a backtracking regex crawl."""
    for line in ("200 result=" + "a" * MAX_RESPONSE_LINE_BYTES,
                 "200 result=1 (" + "(" * MAX_RESPONSE_LINE_BYTES,
                 "200 result=1 (" + "a)" * (MAX_RESPONSE_LINE_BYTES // 2),
                 "200 result=1 " + " (" * (MAX_RESPONSE_LINE_BYTES // 2),
                 "520-" + "x" * MAX_RESPONSE_LINE_BYTES):
        try:
            timed(ResponseParser().feed, line)
        except AgiError as e:
            assert isinstance(e, DOCUMENTED)
    for line in ("agi_" + "a" * 40 + ":" + " " * (MAX_LINE_BYTES - 50), "agi_x: " + "\t " * 500):
        try:
            timed(HeaderParser().feed, line)
        except AgiProtocolError:
            pass


@FUZZ
@given(st.sampled_from(["CASELINE_ROUTE", "CASELINE_FILED", "CASELINE_STATUS"]),
       st.text(max_size=500) | st.binary(max_size=200) | st.integers() | st.none())
def test_set_variable_sends_a_safe_value_or_nothing(name: str, value: object) -> None:
    try:
        command = set_variable_command(name, value)  # type: ignore[arg-type]
    except ValueError:
        return  # refused: never sent (the server falls back to the operators)
    assert command.isascii() and "\n" not in command and "\r" not in command
    inner = command.removeprefix(f'SET VARIABLE {name} "').removesuffix('"')
    assert not any(c in inner for c in "\"'$\\{}[](),;&` \x00")


# -- the same through a real socket ---------------------------------------------------------------


async def _route(raw: str | None, call_id: str) -> tuple[CallerProfile, Decision]:
    return CallerProfile(number=None), Decision(service=Service.OPERATOR, priority=0, route=(), reasons=())


async def _one_session(chunks: list[bytes], answers: bytes) -> bytes:
    """Everything the server wrote back before closing the socket."""
    server = AgiServer(_route, lambda _: None, "127.0.0.1", 0, header_timeout=1.0, command_timeout=1.0)
    await server.start()
    out = b""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for chunk in chunks:
            writer.write(chunk)
        writer.write(answers)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
            writer.write_eof()  # we are done: the server must finish on its own
        async with asyncio.timeout(5):  # a guard; the server answers or closes on EOF
            with contextlib.suppress(ConnectionError):
                out = await reader.read()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    finally:
        await server.close()
    assert server.active_sessions == 0
    return out


class _Failures(logging.Handler):
    """Collects records of the server's own failures (a traceback means a bug of ours)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@FUZZ_SLOW
@given(st.lists(HEADER_LINE, max_size=30), st.binary(max_size=300) | st.lists(
    RESPONSE_LINE, max_size=12).map(lambda ls: "".join(line + "\n" for line in ls).encode("utf-8", "surrogatepass")))
def test_server_survives_arbitrary_bytes(chunks: list[bytes], answers: bytes) -> None:
    failures = _Failures()
    agi_log = logging.getLogger("caseline.agi")
    agi_log.addHandler(failures)
    try:
        out = asyncio.run(_one_session([*chunks, b"\n"], answers))
    finally:
        agi_log.removeHandler(failures)
    assert not failures.records, [r.getMessage() for r in failures.records]
    for line in out.splitlines():
        assert line.startswith(b'SET VARIABLE CASELINE_') and line.isascii(), line[:100]


def test_server_harness_sees_a_real_session() -> None:
    """The fuzz harness is able to see commands at all (so an empty answer above means 'closed')."""
    env = [b"agi_network_script: route\n", b"agi_callerid: \xff+79161234567\n", b"\n"]
    out = asyncio.run(_one_session(env, b"200 result=1\n"))
    assert out.splitlines() == [b'SET VARIABLE CASELINE_ROUTE "ok:0::1"']  # an empty route


def test_a_line_with_a_newline_inside_is_refused() -> None:
    """Found by the fuzzer above: b"\\n\\n" decoded to "\\n", a line break inside one line."""
    with pytest.raises(AgiProtocolError):
        decode_line(b"\n\n", MAX_LINE_BYTES)
