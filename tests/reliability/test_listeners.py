"""The ports anyone on the host can reach: idle sockets cannot exhaust descriptors or lock
out real users, idle connections are closed, and a second instance cannot share a port.

Reproduced before the fix: 1,150 idle TCP connections to the ops port (no login) ran the
process out of descriptors (EMFILE): ARI requests failed and a real FastAGI session got no
command for 12 s. Here the same on a bounded scale: a cap of 20, 40 idle connections.
"""
from __future__ import annotations

import asyncio
import contextlib
import resource

import aiohttp
import pytest

from agi.server import AgiServer
from ari_app.core.models import (
    CallerProfile,
    Decision,
    HistoryClass,
    HistoryFacts,
    RouteStep,
    Service,
    SourceStatus,
    StepKind,
)
from ari_app.ops.api import OpsServer, create_app
from ari_app.ops.listen import PortInUse, raise_open_file_limit
from ari_app.ops.metrics import Metrics

CAP = 20
IDLE = 40
GUARD_S = 5  # only against a hung test: every wait below ends on an event
AGI_ENV = (b"agi_network: yes\nagi_network_script: route\nagi_request: agi://127.0.0.1/route\n"
           b"agi_uniqueid: 1718000000.1\nagi_callerid: +79161234567\n\n")


async def nothing(*_: object) -> None:
    return None


def ops_app():
    async def ready() -> bool:
        return True
    return create_app(token="t0ken", metrics=Metrics(), checks={"redis": ready}, reload=nothing,
                      live_calls=list, invalidate=nothing)


async def route(raw: str | None, call_id: str) -> tuple[CallerProfile, Decision]:
    return (CallerProfile(number=raw, history=HistoryFacts(status=SourceStatus.OK, cls=HistoryClass.NEW)),
            Decision(service=Service.OPERATORS, priority=0, route=(RouteStep(StepKind.QUEUE, "operators"),),
                     reasons=()))


async def idle_connections(port: int, count: int, *, partial: bytes = b"",
                           ) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """`count` connections that send `partial` (half of a request, or nothing) and wait."""
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
    for _, writer in conns:
        if partial:
            writer.write(partial)
            await writer.drain()
    return conns


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True once the server has closed the connection (whatever it sent before)."""
    async with asyncio.timeout(GUARD_S):
        with contextlib.suppress(ConnectionResetError):  # an abort: closed just the same
            await reader.read()
    return True


async def close_all(conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> None:
    for _, writer in conns:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


# -- ops API ------------------------------------------------------------------------------


async def test_idle_connections_cannot_lock_ops_staff_out_of_the_ops_api():
    server = OpsServer(ops_app(), port=0, max_connections=CAP, header_timeout=60, keepalive_timeout=60)
    await server.start()
    half_sent = b"GET /readyz HTTP/1.1\r\nHost: x\r\n"  # the blank line never comes
    conns = (await idle_connections(server.port, IDLE // 2)
             + await idle_connections(server.port, IDLE // 2, partial=half_sent))
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(GUARD_S):
            async with http.get(f"http://127.0.0.1:{server.port}/healthz") as answer:
                assert answer.status == 200
            # served at once: no idle connection had to time out first, and the cap held
            assert server.guard is not None and server.guard.expired == 0
            assert len(server.guard.open_connections()) <= CAP
        # the oldest idle connections made room: closed by the server, not left hanging
        closed = [await closed_by_server(reader) for reader, _ in conns[:IDLE - CAP + 1]]
        assert all(closed)
    finally:
        await close_all(conns)
        await server.close()


async def test_idle_and_half_sent_connections_are_closed_after_the_header_timeout():
    server = OpsServer(ops_app(), port=0, max_connections=CAP, header_timeout=0.3, keepalive_timeout=0.3)
    await server.start()
    conns = (await idle_connections(server.port, 5)
             + await idle_connections(server.port, 5, partial=b"GET /healthz HTTP/1.1\r\nHo"))
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert all([await closed_by_server(reader) for reader, _ in conns])
        assert loop.time() - started < 3  # the header timeout, not aiohttp's hour
        assert server.guard is not None and server.guard.expired == 10
    finally:
        await close_all(conns)
        await server.close()


async def test_a_kept_alive_connection_is_closed_after_the_keepalive_timeout():
    server = OpsServer(ops_app(), port=0, header_timeout=60, keepalive_timeout=0.3)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(GUARD_S):
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        assert await closed_by_server(reader)
    finally:
        await close_all([(reader, writer)])
        await server.close()


# -- FastAGI ------------------------------------------------------------------------------


async def test_idle_connections_cannot_keep_a_real_fastagi_session_out():
    metrics = Metrics()
    server = AgiServer(route, {}.get, "127.0.0.1", 0, metrics=metrics, max_sessions=CAP, header_timeout=60)
    await server.start()
    conns = await idle_connections(server.port, IDLE, partial=b"agi_network: yes\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(AGI_ENV)
        await writer.drain()
        async with asyncio.timeout(GUARD_S):  # Asterisk's session gets its commands at once
            first = await reader.readline()
        assert first.startswith(b"SET VARIABLE CASELINE_")
        assert server.active_sessions <= CAP
        assert all([await closed_by_server(r) for r, _ in conns[:IDLE - CAP + 1]])
        evicted = metrics.registry.get_sample_value("caseline_agi_sessions_total", {"result": "evicted"})
        assert evicted == IDLE - CAP + 1
    finally:
        await close_all([*conns, (reader, writer)])
        await server.close()


def test_fastagi_allows_far_fewer_sessions_than_the_usual_open_file_limit():
    assert AgiServer(route, {}.get).max_sessions <= 1024 // 4


# -- descriptors --------------------------------------------------------------------------


def test_the_open_file_soft_limit_is_raised_to_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(256, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        assert raise_open_file_limit() == (lowered, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == (
            hard if hard != resource.RLIM_INFINITY else max(lowered, 65536))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- exclusive binds ----------------------------------------------------------------------


def one_line_naming(error: BaseException, port: int) -> None:
    text = str(error)
    assert "\n" not in text and f"127.0.0.1:{port}" in text and "already in use" in text, text


async def test_a_second_ops_api_on_the_same_port_fails_with_one_clear_line():
    first = OpsServer(ops_app(), port=0)
    await first.start()
    second = OpsServer(ops_app(), port=first.port)
    try:
        with pytest.raises(PortInUse) as failed:
            await second.start()
        one_line_naming(failed.value, first.port)
        assert failed.value.__cause__ is None and failed.value.__suppress_context__
    finally:
        await second.close()
        await first.close()


async def test_a_second_fastagi_server_on_the_same_port_fails_with_one_clear_line():
    first = AgiServer(route, {}.get, "127.0.0.1", 0)
    await first.start()
    second = AgiServer(route, {}.get, "127.0.0.1", first.port)
    try:
        with pytest.raises(PortInUse) as failed:
            await second.start()
        one_line_naming(failed.value, first.port)
        assert "FastAGI" in str(failed.value)
    finally:
        await second.close()
        await first.close()
