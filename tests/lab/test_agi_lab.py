"""End to end through the FastAGI front: SIPp call to 9100 -> [caseline-agi] -> AGI(route)
-> our AgiServer -> one CASELINE_ROUTE -> the walker's Dial / operators' queue.

The AGI server runs in this test process on 127.0.0.1:4573 (the address in
dialplan/caseline-agi.conf) with a stub route(), so these tests check the FastAGI server,
the wire format against a real Asterisk 22, and dialplan/caseline-agi.conf; the real
decision core is covered by its own tests (and, with `caseline run`, by
test_agi_route_lab.py). What happened is read from SIPp's logs and Asterisk's CDRs (the
walker's trail in the userfield, core/route_trail.py), never from our own logs.

Needs: [inbound] sends 9100 to [caseline-agi] (`exten => 9100,1,Goto(caseline-agi,s,1)`),
and nothing else listening on 127.0.0.1:4573 (no `caseline run` with FastAGI enabled).
"""
from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import AsyncIterator

import pytest

from agi.server import AgiServer
from ari_app.core.models import (
    CallerProfile, Decision, HistoryClass, HistoryFacts, Reason, RouteStep, Service,
    SourceStatus, StepKind,
)
from ari_app.ops.metrics import Metrics
from labkit import sipp
from tests.support.eventually import eventually
from tests.support.phones import answered_by, start_phones

pytestmark = pytest.mark.lab

AGI_HOST, AGI_PORT = "127.0.0.1", 4573
SERVICE = "9100"
OPERATORS = ("op1", "op2")
USERFIELD = 17  # Debian's CSV CDR columns: ..., uniqueid (16), userfield (17)


def new_number() -> str:
    """A caller number no earlier run used (CDRs accumulate in the lab's Master.csv)."""
    return f"+7916{secrets.randbelow(10**7):07d}"


def manager_first(manager: str = "mgr1", priority: int = 5) -> Decision:
    return Decision(
        service=Service.MANAGER, priority=priority,
        route=(RouteStep(StepKind.MANAGER, manager, 10, on_busy=1, on_no_answer=1, on_unavailable=1),
               RouteStep(StepKind.QUEUE, "operators")),
        reasons=(Reason("lab", "lab stub"),))


class StubRoute:
    """route(raw, call_id): records its calls; answers `decision`, or hangs when `hang`."""

    def __init__(self, decision: Decision | None = None, *, hang: bool = False) -> None:
        self.decision = decision or manager_first()
        self.hang = hang
        self.calls: list[tuple[str | None, str]] = []

    async def __call__(self, raw: str | None, call_id: str) -> tuple[CallerProfile, Decision]:
        self.calls.append((raw, call_id))
        if self.hang:
            await asyncio.Event().wait()  # never set: only the server's bound ends this
        history = HistoryFacts(status=SourceStatus.OK, cls=HistoryClass.REPEAT, owner="mgr1")
        return CallerProfile(number=raw, history=history), self.decision


def port_in_use() -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((AGI_HOST, AGI_PORT)) == 0


class Front:
    """The in-process FastAGI server on the dialplan's port."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.server: AgiServer | None = None

    async def start(self, route: StubRoute, endpoints: dict[str, str] | None = None) -> AgiServer:
        endpoints = endpoints if endpoints is not None else {"mgr1": "PJSIP/mgr1", "mgr2": "PJSIP/mgr2"}
        self.server = AgiServer(route, endpoints.get, AGI_HOST, AGI_PORT, metrics=self.metrics)
        await self.server.start()
        return self.server

    def sessions(self, result: str) -> float:
        return self.metrics.registry.get_sample_value("caseline_agi_sessions_total", {"result": result}) or 0


@pytest.fixture
async def front(asterisk) -> AsyncIterator[Front]:
    if port_in_use():
        pytest.fail(f"{AGI_HOST}:{AGI_PORT} is taken: stop whatever serves FastAGI there", pytrace=False)
    holder = Front()
    yield holder
    if holder.server is not None:
        await holder.server.close()
        assert holder.server.active_sessions == 0


async def operator_answer_after(phones: dict[str, sipp.Phone], number: str, started: float,
                                timeout: float = 20) -> float:
    """Seconds from `started` until an operator's phone answered `number` (its SIPp log)."""
    operators = {name: phones[name] for name in OPERATORS if name in phones}
    await eventually(answered_by, operators, number, timeout=timeout,
                     message=f"an operator answers {number}")
    return time.monotonic() - started


def userfields(asterisk, number: str) -> list[str]:
    return [row[USERFIELD] for row in asterisk.cdr_rows(number) if len(row) > USERFIELD]


@contextlib.asynccontextmanager
async def answering(route: str) -> AsyncIterator[None]:
    """A FastAGI server on the dialplan's port that answers every session with `route`, as
    is: what our server never sends (its values are whitelisted)."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()).strip():
            pass  # the environment
        writer.write(f'SET VARIABLE CASELINE_ROUTE "{route}"\n'.encode())
        await writer.drain()
        await reader.readline()  # 200 result=1
        writer.close()

    server = await asyncio.start_server(answer, AGI_HOST, AGI_PORT)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


async def cdr_userfield(asterisk, number: str, expected: str) -> None:
    """Until Asterisk has written the call's CDR with `expected` as its userfield."""
    def written() -> None:
        assert expected in userfields(asterisk, number)

    await eventually(written)


async def test_caller_goes_straight_to_the_case_holder(asterisk, front, phones, tmp_path):
    route = StubRoute(manager_first("mgr1"))
    await front.start(route)
    start_phones(phones, tmp_path, mgr1="answer", op1="answer", op2="answer")
    number = new_number()

    run = await sipp.place_calls(tmp_path, [number], hold_ms=1500, service=SERVICE)
    events = await run.wait(timeout=30)

    assert events == [(number, "answered"), (number, "hung_up")]
    assert answered_by(phones, number) == ["mgr1"]
    [(raw, call_id)] = route.calls
    assert raw == number  # agi_callerid as the trunk sent it

    def cdr_written() -> None:  # Asterisk writes CDRs after the call ended
        rows = asterisk.cdr_rows(number)
        assert any(row[7] == "Dial" and row[8].startswith("PJSIP/mgr1,10") for row in rows), rows
        assert any(row[16] == call_id for row in rows)  # agi_uniqueid is the channel's uniqueid
        assert "caseline-agi:ok:0a." in userfields(asterisk, number)  # step 0 answered

    await eventually(cdr_written)
    assert front.sessions("ok") == 1


async def test_busy_manager_steps_down_to_the_operators(asterisk, front, phones, tmp_path):
    await front.start(StubRoute(manager_first("mgr1", priority=9)))
    start_phones(phones, tmp_path, mgr1="busy", op1="answer", op2="answer")
    number = new_number()

    run = await sipp.place_calls(tmp_path, [number], hold_ms=3000, service=SERVICE)
    events = await run.wait(timeout=30)

    assert events == [(number, "answered"), (number, "hung_up")]
    assert "busy" in phones["mgr1"].calls_from(number)
    assert len(set(answered_by(phones, number)) & set(OPERATORS)) == 1
    await cdr_userfield(asterisk, number, "caseline-agi:ok:0b.1q.")  # busy, then the queue


async def test_slow_decision_falls_back_to_the_operators_within_the_bound(asterisk, front, phones, tmp_path):
    await front.start(StubRoute(hang=True))  # the server gives route() 2 s
    start_phones(phones, tmp_path, op1="answer", op2="answer")
    number = new_number()

    started = time.monotonic()
    run = await sipp.place_calls(tmp_path, [number], hold_ms=3000, service=SERVICE)
    elapsed = await operator_answer_after(phones, number, started)
    await run.wait(timeout=30)

    assert elapsed < 6, f"operators answered after {elapsed:.1f} s"  # 2 s bound + SIP set-up
    await cdr_userfield(asterisk, number, "caseline-agi:fallback:0q.")
    assert front.sessions("fallback") == 1


async def test_without_the_agi_server_calls_still_reach_the_operators(asterisk, front, phones, tmp_path):
    # `front` made sure nothing listens on 4573 and starts nothing: Caseline is away.
    start_phones(phones, tmp_path, op1="answer", op2="answer")
    number = new_number()

    started = time.monotonic()
    run = await sipp.place_calls(tmp_path, [number], hold_ms=3000, service=SERVICE)
    elapsed = await operator_answer_after(phones, number, started)
    events = await run.wait(timeout=30)

    assert events == [(number, "answered"), (number, "hung_up")]
    assert elapsed < 4, f"operators answered after {elapsed:.1f} s"  # refused connect fails at once
    await cdr_userfield(asterisk, number, "caseline-agi:agi_failed:o.")


async def test_dialplan_dials_nothing_outside_its_character_set(asterisk, front, phones, tmp_path):
    # Our server never sends this (it whitelists every value): a dial string ringing two
    # phones. The walker's REGEX takes it for no endpoint: unavailable, then the queue.
    start_phones(phones, tmp_path, mgr1="answer", mgr2="answer", op1="answer", op2="answer")
    number = new_number()
    async with answering("ok:5::1|m:PJSIP/mgr1&PJSIP/mgr2:10:1:1:1|q:operators"):
        run = await sipp.place_calls(tmp_path, [number], hold_ms=3000, service=SERVICE)
        await run.wait(timeout=30)

    assert phones["mgr1"].calls_from(number) == [] and phones["mgr2"].calls_from(number) == []
    assert len(set(answered_by(phones, number)) & set(OPERATORS)) == 1
    await cdr_userfield(asterisk, number, "caseline-agi:ok:0u.1q.")


async def test_caller_hanging_up_while_the_manager_rings_stops_everything(asterisk, front, phones, tmp_path):
    await front.start(StubRoute(manager_first("mgr1")))
    start_phones(phones, tmp_path, mgr1="noanswer", op1="answer", op2="answer")
    number = new_number()

    run = await sipp.place_calls(tmp_path, [number], cancel_after_ring_ms=1000, service=SERVICE)
    events = await run.wait(timeout=30)

    assert events == [(number, "ringing"), (number, "cancelled")]
    await sipp.wait_for_event(phones["mgr1"], number, "cancelled")  # stopped ringing the manager
    assert all(phones[name].calls_from(number) == [] for name in OPERATORS)  # no step down


async def test_many_concurrent_calls_each_get_their_own_session(asterisk, front, phones, tmp_path):
    route = StubRoute(manager_first("mgr1"))
    await front.start(route)
    start_phones(phones, tmp_path, mgr1="answer", op1="answer", op2="answer")
    numbers = [new_number() for _ in range(10)]

    run = await sipp.place_calls(tmp_path, numbers, hold_ms=1000, rate=20, service=SERVICE)
    events = await run.wait(timeout=60)

    assert sorted(n for n, e in events if e == "answered") == sorted(numbers)  # nobody lost
    assert sorted(raw for raw, _ in route.calls) == sorted(numbers)
    assert len({call_id for _, call_id in route.calls}) == len(numbers)
    assert front.sessions("ok") == len(numbers)
