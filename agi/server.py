"""The FastAGI front: the same decision as the ARI app, the whole route in one channel variable.

Why not panoramisk.fast_agi: its handler reads the environment with an unbounded loop
(EOF before the blank line spins forever), has no timeouts, and swallows BaseException
(including cancellation). This server is small and bounded instead:

- one task per connection, created and tracked synchronously, so `close()` owns them all;
- the environment must arrive within `header_timeout` (64 lines, 1 KB each at most);
- `route()` is bounded by `route_timeout`; a timeout or a bug sets the fallback
  (operators) and the session still answers;
- every command's answer is bounded by `command_timeout`; HANGUP, 511 and EOF end the
  session quietly; the socket is closed in `finally`;
- at most `max_sessions` sessions, well below the usual open-file limit of 1024: at the cap a
  new connection closes the oldest session still waiting for its environment (an idle
  socket), so idle sockets cannot keep Asterisk's real sessions out; when every session is
  past that point, the new connection is refused;
- the port is bound exclusively: a second instance fails to start instead of sharing it;
- admission control (core/admission.py): over a bound, a new session skips the route and
  answers at once with the operators' queue and a priority computed without I/O (status
  "shed", in the same one command as a decision);
- once the environment is read, the whole session (decision and answer) must end within
  `session_timeout`: a stalled peer or a stuck write cannot keep it. The dialplan bounds
  its side too (TIMEOUT(absolute) around AGI, dialplan/caseline-agi.conf).

Scripts: `route` answers with the whole route in ONE `SET VARIABLE CASELINE_ROUTE`
(core/route_program.py: why one variable); `callback` files the caller's callback request
when the dialplan reaches a callback step (CASELINE_FILED: the request's id, "" if none).
Every decision is handed to `calls` (record/agi_calls.py), which writes it to the decision
log with its outcome once the call's CDRs arrive.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from agi.protocol import (
    MAX_LINE_BYTES,
    MAX_RESPONSE_LINE_BYTES,
    AgiConnectionClosed,
    AgiDeadChannel,
    AgiError,
    AgiHangup,
    AgiProtocolError,
    AgiResponse,
    HeaderParser,
    ResponseParser,
    decode_line,
    script_name,
)
from agi.variables import (
    fallback_program,
    route_command,
    sanitize_call_id,
    sanitize_caller_id,
    sanitize_trail,
    set_variable_command,
    shed_program,
)
from ari_app.core.admission import ShedTarget
from ari_app.core.models import CallerProfile, Decision
from ari_app.core.route_program import RouteProgram, compile_route
from ari_app.ops.listen import PortInUse, is_port_in_use

if TYPE_CHECKING:
    from ari_app.ops.metrics import Metrics

log = logging.getLogger("caseline.agi")

Route = Callable[[str | None, str], Awaitable[tuple[CallerProfile, Decision]]]
EndpointOf = Callable[[str], str | None]
Shed = Callable[[str | None], ShedTarget | None]  # as stasis/shed.py: None admits the call
# (profile, decision) -> the program the dialplan walks; the default knows endpoints only
Compile = Callable[[CallerProfile, Decision], RouteProgram]


class Calls(Protocol):
    """What happens to each decided call (record/agi_calls.py)."""

    def decided(self, call_id: str, started: datetime, profile: CallerProfile,
                decision: Decision, program: RouteProgram, decide_ms: float) -> None: ...

    async def file_callback(self, call_id: str, trail: str) -> str: ...


ROUTE_SCRIPT = "route"
CALLBACK_SCRIPT = "callback"
MAX_SESSIONS = 256


class AgiServer:
    """`await AgiServer(route, endpoint_of).start()`; `.port` is the bound port (for port 0)."""

    def __init__(self, route: Route, endpoint_of: EndpointOf, host: str = "127.0.0.1",
                 port: int = 4573, *, metrics: Metrics | None = None,
                 route_timeout: float = 2.0, header_timeout: float = 5.0,
                 command_timeout: float = 2.0, session_timeout: float = 2.5,
                 max_sessions: int = MAX_SESSIONS, shed: Shed | None = None,
                 compile: Compile | None = None, calls: Calls | None = None) -> None:
        self._route = route
        self._endpoint_of = endpoint_of
        self._compile = compile or (lambda profile, decision: compile_route(
            decision, profile, endpoint_of=endpoint_of))
        self._calls = calls
        # below the dialplan's own deadline (CASELINE_AGI_DEADLINE, 3 s): Caseline answers
        # (with the operators, at worst) before Asterisk gives up on it
        self.session_timeout = session_timeout
        self.host = host
        self._port = port
        self._metrics = metrics
        self.route_timeout = route_timeout
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self.max_sessions = max_sessions
        self._shed = shed
        self.routing = 0  # admitted sessions being decided and answered: calls in progress
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        # sessions still reading their environment, oldest first: the ones a new connection
        # may push out at the cap; evicted ones are cancelled and no longer count
        self._waiting: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._evicted: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active_sessions(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("already started")
        self._closing = False
        # A plain (non-async) callback: the session task is created and tracked in the
        # same step as the connection, so there is no window where close() cannot see it.
        try:
            self._server = await asyncio.start_server(
                self._on_connect, self.host, self._port, limit=MAX_RESPONSE_LINE_BYTES,
                reuse_port=False)
        except OSError as e:
            if is_port_in_use(e):
                raise PortInUse("FastAGI", self.host, self._port) from None
            raise
        log.info("FastAGI listening on %s:%d", self.host, self.port)

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop accepting; give running sessions `grace_s` to finish, then cancel them."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        if grace_s > 0 and self._sessions:
            await asyncio.wait(set(self._sessions), timeout=grace_s)
        while self._sessions:
            tasks = list(self._sessions)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AgiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- sessions ---------------------------------------------------------------------

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._closing and len(self._sessions) - len(self._evicted) >= self.max_sessions:
            self._evict_oldest_waiting()
        if self._closing or len(self._sessions) - len(self._evicted) >= self.max_sessions:
            writer.transport.abort()
            self._count("rejected")
            return
        task = asyncio.get_running_loop().create_task(self._run(reader, writer), name="agi-session")
        self._sessions.add(task)
        self._waiting[task] = writer
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._sessions.discard(task)
        self._waiting.pop(task, None)
        self._evicted.discard(task)

    def _evict_oldest_waiting(self) -> None:
        if not self._waiting:
            return
        task, writer = next(iter(self._waiting.items()))
        del self._waiting[task]
        self._evicted.add(task)
        writer.transport.abort()  # the descriptor is free now, even if the task never ran
        task.cancel()
        self._count("evicted")
        log.warning("FastAGI: %d sessions: closed the oldest one still without its environment",
                    self.max_sessions)

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        result = "error"
        try:
            result = await self._session(reader, writer)
        except AgiProtocolError as e:
            result = "bad_request"
            log.info("FastAGI: closing a session that does not speak AGI: %s", e)
        except (AgiHangup, AgiDeadChannel, AgiConnectionClosed, ConnectionError):
            result = "hangup"  # the caller or Asterisk went away: nothing left to do
        except TimeoutError:
            result = "timeout"
            log.warning("FastAGI: peer too slow, session closed")
        except AgiError as e:  # 510/520: our command was wrong, a bug worth seeing
            log.error("FastAGI: Asterisk refused a command: %s", type(e).__name__)
        except Exception:
            log.exception("FastAGI: session failed")
        except asyncio.CancelledError:
            # server closing, or pushed out at the cap while idle (counted there)
            result = "" if asyncio.current_task() in self._evicted else "cancelled"
            raise
        finally:
            await _close(writer)
            if result:
                self._count(result)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        headers = await self._read_headers(reader)
        self._waiting.pop(asyncio.current_task(), None)  # a real session now: never evicted
        async with asyncio.timeout(self.session_timeout):
            return await self._serve(reader, writer, headers)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     headers: dict[str, str]) -> str:
        script = script_name(headers)
        call_id = sanitize_call_id(headers.get("agi_uniqueid")) or f"agi-{uuid.uuid4().hex}"
        if script == CALLBACK_SCRIPT:
            filed = await self._file_callback(call_id, sanitize_trail(headers.get("agi_arg_1")))
            await self._command(reader, writer, set_variable_command("CASELINE_FILED", filed))
            return "callback"
        if script != ROUTE_SCRIPT:
            log.warning("FastAGI: unknown script requested")
            await self._command(reader, writer, set_variable_command("CASELINE_STATUS", "unknown_script"))
            return "unknown_script"
        caller = sanitize_caller_id(headers.get("agi_callerid"))
        target = self._shed(caller) if self._shed is not None else None
        if target is not None:
            await self._command(reader, writer, route_command(shed_program(target)))
            return "shed"
        self.routing += 1
        try:
            program, result = await self._decide(caller, call_id)
            await self._command(reader, writer, route_command(program))
        finally:
            self.routing -= 1
        return result

    async def _decide(self, caller: str | None, call_id: str) -> tuple[RouteProgram, str]:
        started, clock = datetime.now(UTC), time.perf_counter()
        try:
            async with asyncio.timeout(self.route_timeout):
                profile, decision = await self._route(caller, call_id)
            program = self._compile(profile, decision)
            route_command(program)  # a value outside the whitelist is a bug: fall back now
        except TimeoutError:
            reason = "agi_route_timeout"
            log.warning("FastAGI: no decision within %.1f s for call %s: fallback", self.route_timeout, call_id)
        except Exception:  # a bug in route() or compile(): the caller still gets operators
            reason = "agi_route_error"
            log.exception("FastAGI: decision failed for call %s: fallback", call_id)
        else:
            if self._calls is not None:
                try:
                    self._calls.decided(call_id, started, profile, decision, program,
                                        (time.perf_counter() - clock) * 1000)
                except Exception:  # the decision log must never cost the call its route
                    log.exception("FastAGI: could not keep the decision of call %s", call_id)
            return program, "ok"
        if self._metrics is not None:
            self._metrics.fallback(reason)
        return fallback_program(), "fallback"

    async def _file_callback(self, call_id: str, trail: str) -> str:
        """The request's id; "" when nothing could be filed (the dialplan: operators)."""
        if self._calls is None:
            return ""
        try:
            async with asyncio.timeout(self.route_timeout):
                return await self._calls.file_callback(call_id, trail)
        except TimeoutError:
            log.warning("FastAGI: callback request of call %s not filed in time", call_id)
        except Exception:
            log.exception("FastAGI: callback request of call %s failed", call_id)
        return ""

    async def _read_headers(self, reader: asyncio.StreamReader) -> dict[str, str]:
        parser = HeaderParser()
        try:
            async with asyncio.timeout(self.header_timeout):
                while not parser.feed(await _read_line(reader, MAX_LINE_BYTES)):
                    pass
        except AgiConnectionClosed:
            raise AgiProtocolError("environment truncated (EOF)") from None
        return parser.headers

    async def _command(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       command: str) -> AgiResponse:
        writer.write(command.encode("ascii") + b"\n")
        parser = ResponseParser()
        async with asyncio.timeout(self.command_timeout):
            await writer.drain()
            while True:
                response = parser.feed(await _read_line(reader, MAX_RESPONSE_LINE_BYTES))
                if response is not None:
                    return response

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.agi_session(result)


async def _read_line(reader: asyncio.StreamReader, limit: int) -> str:
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        raise AgiConnectionClosed("EOF") from None
    except asyncio.LimitOverrunError:
        raise AgiProtocolError("line too long") from None
    return decode_line(raw, limit)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close now; a peer that stops reading must not keep the socket (or us) waiting."""
    writer.close()
    try:
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        writer.transport.abort()
    except asyncio.CancelledError:
        writer.transport.abort()
        raise
