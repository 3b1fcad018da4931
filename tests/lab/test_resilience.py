"""Caseline going away and coming back, with real calls in flight."""
from __future__ import annotations

import asyncio
import os
import signal

import pytest

from labkit import sipp
from labkit.caseline_process import CaselineProcess
from tests.conftest import lab_config, start_phones
from tests.lab.test_routing import VIP_A_MGR1, wait_decision

pytestmark = pytest.mark.lab


async def no_channels_left(lab, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while await asyncio.to_thread(lab.ari, "GET", "/channels"):
            await asyncio.sleep(0.1)


async def test_killed_app_leaves_bridged_calls_talking_and_the_next_one_adopts_them(
        routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="answer", op1="answer", op2="answer")
    run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=5000)
    await sipp.wait_for_event(phones["mgr1"], VIP_A_MGR1, "answered")
    async with asyncio.timeout(5):  # the phone has answered: wait until we bridged them
        while not await asyncio.to_thread(routing.lab.ari, "GET", "/bridges"):
            await asyncio.sleep(0.02)

    os.killpg(routing.process.pid, signal.SIGKILL)
    routing.process.wait()
    bridges = await asyncio.to_thread(routing.lab.ari, "GET", "/bridges")
    assert [len(b["channels"]) for b in bridges] == [2], "the call keeps talking without us"

    successor = CaselineProcess(tmp_path / "next", [], lab_config(tmp_path / "next"),
                                extra_env={"CASELINE_REDIS_URL": routing.redis_url})
    try:
        await successor.registered()
        # the caller hangs up after 5 s: the adopted bridge ends on both sides
        assert await run.wait() == [(VIP_A_MGR1, "answered"), (VIP_A_MGR1, "hung_up")]
        await sipp.wait_for_event(phones["mgr1"], VIP_A_MGR1, "bye", timeout=5)
        await no_channels_left(routing.lab)
        assert await asyncio.to_thread(routing.lab.ari, "GET", "/bridges") == []
    finally:
        successor.stop()


async def test_a_second_instance_replaces_the_first_and_exactly_one_routes(
        routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="answer", op1="answer", op2="answer")
    successor = CaselineProcess(tmp_path / "next", [], lab_config(tmp_path / "next"),
                                extra_env={"CASELINE_REDIS_URL": routing.redis_url})
    try:
        await successor.registered()
        async with asyncio.timeout(10):  # the first one notices ApplicationReplaced and exits
            while routing.process.poll() is None:
                await asyncio.sleep(0.05)
        assert routing.process.returncode == 0

        run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=500)
        assert await run.wait() == [(VIP_A_MGR1, "answered"), (VIP_A_MGR1, "hung_up")]
        [entry] = await wait_decision(routing, 1)
        assert entry["answered_by"] == "mgr1"
    finally:
        successor.stop()
