"""Caseline going away and coming back, with real calls in flight."""
from __future__ import annotations

import os
import signal

import pytest

from labkit import sipp
from labkit.caseline_process import CaselineProcess
from tests.support.callers import VIP_A_MGR1
from tests.support.decisions import wait_decision
from tests.support.eventually import eventually
from tests.support.lab import idle, lab_config
from tests.support.phones import start_phones

pytestmark = pytest.mark.lab


async def bridge_sizes(lab) -> list[int]:
    return [len(bridge["channels"]) for bridge in await lab.bridges()]


async def both_parties_bridged(lab) -> None:
    assert await bridge_sizes(lab) == [2]  # one bridge, the caller and the manager in it


async def test_killed_app_leaves_bridged_calls_talking_and_the_next_one_adopts_them(
        routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="answer", op1="answer", op2="answer")
    run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=5000)
    await sipp.wait_for_event(phones["mgr1"], VIP_A_MGR1, "answered")
    # the phone has answered: kill only once we have put both parties in one bridge
    await eventually(both_parties_bridged, routing.lab, timeout=5)

    os.killpg(routing.process.pid, signal.SIGKILL)
    routing.process.wait()
    assert await bridge_sizes(routing.lab) == [2], "the call keeps talking without us"

    # the successor of a rolling deploy runs on another host: here, another loopback address
    # for its own listeners (ops API and FastAGI bind exclusively: a second process on the
    # same address and port is refused, see test_listeners.py)
    successor = CaselineProcess(tmp_path / "next", [], lab_config(tmp_path / "next"),
                                extra_env={"CASELINE_REDIS_URL": routing.redis_url,
                                           "CASELINE_OPS_HOST": "127.0.0.5",
                                           "CASELINE_AGI_HOST": "127.0.0.5"})
    try:
        await successor.registered()
        # the caller hangs up after 5 s: the adopted bridge ends on both sides
        assert await run.wait() == [(VIP_A_MGR1, "answered"), (VIP_A_MGR1, "hung_up")]
        await sipp.wait_for_event(phones["mgr1"], VIP_A_MGR1, "bye", timeout=5)
        await eventually(idle, routing.lab)  # the successor destroys the bridge it adopted
    finally:
        successor.stop()


async def test_a_second_instance_replaces_the_first_and_exactly_one_routes(
        routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="answer", op1="answer", op2="answer")
    # the successor of a rolling deploy runs on another host: here, another loopback address
    # for its own listeners (ops API and FastAGI bind exclusively: a second process on the
    # same address and port is refused, see test_listeners.py)
    successor = CaselineProcess(tmp_path / "next", [], lab_config(tmp_path / "next"),
                                extra_env={"CASELINE_REDIS_URL": routing.redis_url,
                                           "CASELINE_OPS_HOST": "127.0.0.5",
                                           "CASELINE_AGI_HOST": "127.0.0.5"})
    try:
        await successor.registered()
        # the first one notices ApplicationReplaced and exits
        await eventually(lambda: routing.process.poll() is not None, timeout=10,
                         message="the replaced process exits")
        assert routing.process.returncode == 0

        run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=500)
        assert await run.wait() == [(VIP_A_MGR1, "answered"), (VIP_A_MGR1, "hung_up")]
        [entry] = await wait_decision(routing, 1)
        assert entry["answered_by"] == "mgr1"
    finally:
        successor.stop()
