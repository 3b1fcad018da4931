"""Faults with real calls through the lab (issue 10.1): figures go to docs/reliability.md.

Every test prints a `FIGURE name value` line; `pytest -s` shows them.
"""
from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from redis.asyncio import Redis

from labkit import asterisk as lab_asterisk
from labkit import sipp
from labkit.caseline_process import READY_LINE, CaselineProcess
from labkit.redis_server import RedisServer
from labkit.tcp_proxy import TcpProxy
from tests.support.callers import VIP_A_MGR1
from tests.support.decisions import decisions, wait_decision
from tests.support.eventually import eventually
from tests.support.lab import lab_config
from tests.support.phones import start_phones

pytestmark = pytest.mark.lab

LOST = "ARI events lost"


def figure(name: str, value: float, unit: str) -> None:
    print(f"FIGURE {name} {value:.2f} {unit}")


async def wait_log(process: CaselineProcess, text: str, timeout: float, after: int = 0) -> float:
    """Seconds until `text` appears in the process log (after byte offset `after`)."""
    started = time.monotonic()
    await eventually(lambda: text in process.log.read_text(errors="replace")[after:],
                     timeout=timeout, interval=0.02, message=f"{text!r} in {process.log}")
    return time.monotonic() - started


def numbers(count: int, base: int = 79_800_000_000) -> list[str]:
    return [f"+{base + i}" for i in range(count)]


async def mid_run(routing, decided: int = 5, channels: int = 2) -> None:
    """Asserts calls are flowing: Caseline has routed some, Asterisk holds others right now."""
    assert len(await decisions(routing, 50)) >= decided
    assert len(await routing.lab.channels()) >= channels


@pytest.mark.timeout(120)
async def test_sigkill_under_10_calls_per_second_loses_no_call(routing, phones, tmp_path):
    start_phones(phones, tmp_path, op1="answer", op2="answer", mgr1="answer", sup1="answer")
    callers = numbers(30)
    run = await sipp.place_calls(tmp_path, callers, hold_ms=200, rate=10, timeout_s=100)
    await eventually(mid_run, routing)  # kill the app in the middle of the calls
    os.killpg(routing.process.pid, signal.SIGKILL)
    routing.process.wait()
    started = time.monotonic()
    successor = CaselineProcess(tmp_path / "next", [], lab_config(tmp_path / "next"),
                                extra_env={"CASELINE_REDIS_URL": routing.redis_url})
    try:
        await successor.registered()
        figure("restart_to_routing_s", time.monotonic() - started, "s")
        events = await run.wait(timeout=110)
        answered = {n for n, e in events if e == "answered"}
        assert answered == set(callers), f"lost: {set(callers) - answered}"
        assert all(e in ("answered", "hung_up", "remote_hangup") for _, e in events)
        assert time.monotonic() - started < 100
    finally:
        successor.stop()


async def test_a_silently_dead_websocket_is_noticed_within_the_heartbeat_bound(
        asterisk, phones, tmp_path, redis_url):
    proxy = TcpProxy("127.0.0.1", 8088)
    port = await proxy.start()
    process = CaselineProcess(tmp_path, [], lab_config(tmp_path), extra_env={
        "CASELINE_REDIS_URL": redis_url, "CASELINE_ARI_URL": f"http://127.0.0.1:{port}"})
    try:
        await process.registered()
        mark = len(process.log.read_text(errors="replace"))
        proxy.freeze()
        noticed = await wait_log(process, LOST, timeout=15, after=mark)
        figure("silent_websocket_noticed_s", noticed, "s")
        assert noticed <= 5 * 1.5 + 1  # heartbeat_s=5: a ping, then half a period for the pong
        await wait_log(process, READY_LINE, timeout=15, after=mark)
        start_phones(phones, tmp_path, mgr1="answer")
        run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=300)
        assert await run.wait() == [(VIP_A_MGR1, "answered"), (VIP_A_MGR1, "hung_up")]
        await sipp.wait_for_event(phones["mgr1"], VIP_A_MGR1, "bye")
    finally:
        process.stop()
        await proxy.close()


@pytest.mark.timeout(120)
async def test_asterisk_restart_reconnects_and_routes_again(routing, phones, tmp_path):
    mark = len(routing.log.read_text(errors="replace"))
    await asyncio.to_thread(lab_asterisk.stop)
    await wait_log(routing, LOST, timeout=15, after=mark)
    started = time.monotonic()
    await asyncio.to_thread(lab_asterisk.up)
    booted = time.monotonic() - started
    await wait_log(routing, READY_LINE, timeout=30, after=mark)
    figure("asterisk_up_then_caseline_routing_s", time.monotonic() - started - booted, "s")
    assert routing.process.poll() is None
    start_phones(phones, tmp_path, mgr1="answer")
    run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=300)
    assert await run.wait() == [(VIP_A_MGR1, "answered"), (VIP_A_MGR1, "hung_up")]
    # nothing was sent to Asterisk before it was fully booted: no 503 "not booted" errors
    assert "Asterisk not booted" not in routing.log.read_text(errors="replace")


async def test_redis_down_calls_still_routed_and_outcomes_land_when_it_returns(
        asterisk, phones, tmp_path):
    redis_server = RedisServer.start()
    process = CaselineProcess(tmp_path, [], lab_config(tmp_path),
                              extra_env={"CASELINE_REDIS_URL": redis_server.url})
    try:
        await process.registered()
        start_phones(phones, tmp_path, mgr1="answer", op1="answer", op2="answer")
        port = redis_server.port
        redis_server.stop()
        run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=300)
        assert await run.wait() == [(VIP_A_MGR1, "answered"), (VIP_A_MGR1, "hung_up")]
        await sipp.wait_for_event(phones["mgr1"], VIP_A_MGR1, "bye")

        redis_server = RedisServer.start(port=port)
        process.redis_url = redis_server.url
        started = time.monotonic()
        [entry] = await wait_decision(process, 1, timeout=15)
        figure("outcome_written_after_redis_back_s", time.monotonic() - started, "s")
        assert entry["history"] == "unavailable"
        assert any("history=unavailable" in r["text"] for r in entry["reasons"]), entry["reasons"]
        assert entry["answered_by"] == "mgr1"
        client = Redis.from_url(redis_server.url)
        try:
            # learned from the call's CDRs once they settle, through the same pending writes
            await eventually(client.exists, f"caseline:hist:{VIP_A_MGR1}", timeout=10,
                             message="the call's history in Redis")
        finally:
            await client.aclose()
    finally:
        process.stop()
        redis_server.stop()
