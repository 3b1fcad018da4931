"""The running process's ops surface against the lab: readiness, live calls, metrics, reload."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import aiohttp
import pytest
import yaml

from labkit import root as lab_root
from labkit import sipp
from tests.support.callers import VIP_A_MGR1
from tests.support.decisions import learned, wait_decision
from tests.support.eventually import eventually
from tests.support.lab import PROJECT
from tests.support.ops import OPS, auth, ops_get
from tests.support.phones import start_phones

pytestmark = pytest.mark.lab


async def test_readyz_reports_ari_redis_and_ami_and_calls_shows_a_ringing_call(routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="answer:2500")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{OPS}/readyz") as answer:
            assert answer.status == 200, await answer.text()
        async with http.get(f"{OPS}/calls") as answer:
            assert answer.status == 401  # no token
        run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=500)
        await sipp.wait_for_event(phones["mgr1"], VIP_A_MGR1, "invite")
        async with http.get(f"{OPS}/calls", headers=auth()) as answer:
            live = await answer.json()
        assert len(live["calls"] if isinstance(live, dict) else live) == 1
        await run.wait()
    await wait_decision(routing, 1)

    async def counted() -> None:  # the call is counted just after its decision is logged
        text = await ops_get("/metrics")
        assert 'caseline_calls_total{class="new",outcome="answered",service="manager"} 1.0' in text

    await eventually(counted, timeout=5)


async def test_reload_changes_the_next_decision_without_a_restart(routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="answer")
    first = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=300)
    await first.wait()
    assert (await wait_decision(routing, 1))[0]["priority"] == "70"  # retention: A = 70

    routing_file = tmp_path / "config" / "routing.yaml"
    policy = yaml.safe_load(routing_file.read_text())
    policy["strategy"]["mode"] = "expansion"  # expansion: A = 60
    routing_file.write_text(yaml.safe_dump(policy, allow_unicode=True))
    env = {**os.environ, **lab_root.lab_secrets()}
    done = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "ari_app.cli", "--config", str(tmp_path / "config"), "reload"],
        capture_output=True, text=True, env=env, cwd=PROJECT, timeout=30)
    assert done.returncode == 0 and "\"ok\": true" in done.stdout, done.stdout + done.stderr

    await learned(routing, VIP_A_MGR1)  # the first call is in history: the next is a repeat
    second = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=300)
    await second.wait()
    latest = (await wait_decision(routing, 2))[0]
    # now a repeat call: expansion's A base 60 + the repeat boost 10 (retention would be 80)
    assert latest["priority"] == "70"
    assert any("expansion mode, A base 60" in r["text"] for r in latest["reasons"]), latest["reasons"]
    assert routing.process.poll() is None  # same process


async def test_a_broken_routing_file_is_refused_and_the_old_one_keeps_routing(routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="answer")
    routing_file = tmp_path / "config" / "routing.yaml"
    routing_file.write_text(routing_file.read_text().replace("mode: retention", "mode: sideways"))
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{OPS}/reload", headers=auth()) as answer:
            body = await answer.json()
    assert answer.status == 500 and "routing.yaml" in str(body) and "strategy.mode" in str(body)

    run = await sipp.place_calls(tmp_path, [VIP_A_MGR1], hold_ms=300)
    await run.wait()
    [entry] = await wait_decision(routing, 1)
    assert entry["answered_by"] == "mgr1" and entry["priority"] == "70"
