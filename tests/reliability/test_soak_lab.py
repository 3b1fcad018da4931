"""Soak (issue 10.3): a steady call rate with random outcomes, then nothing may be left over.

CASELINE_SOAK_S sets the duration (default 60 s in the suite; the 10-minute figures in
docs/reliability.md come from CASELINE_SOAK_S=600). Outcomes: the manager answers (mgr1,
after 1.5 s; busy in our own view when two of their calls overlap), does not answer (mgr2,
ring timeout -> supervisor, who replies 486 busy -> operators' queue), new callers in the
queue, and callers who hang up while the manager's phone (mgr3) rings.
"""
from __future__ import annotations

import asyncio
import os
import re
import time

import aiohttp
import pytest

from labkit import root as lab_root
from labkit import sipp
from tests.conftest import start_phones
from tests.lab.test_routing import decisions

pytestmark = pytest.mark.lab

SOAK_S = int(os.environ.get("CASELINE_SOAK_S", "60"))
TALKING_CPS = 0.6
CANCELLING_CPS = 0.2
# VIP of mgr1 (answers), claim of mgr2 (no answer -> sup1 busy -> queue), new (queue)
TALKERS = ["+79161234567", "+79161234568", "+79057778899"]
CANCELLER = "+79031112233"  # delivery today -> mgr3, who never answers: they hang up first


async def process_figures() -> dict[str, float]:
    token = lab_root.lab_secrets()["CASELINE_OPS_TOKEN"]
    async with aiohttp.ClientSession() as http:
        async with http.get("http://127.0.0.1:8090/metrics",
                            headers={"Authorization": f"Bearer {token}"}) as answer:
            text = await answer.text()
    figures = {}
    for name in ("process_resident_memory_bytes", "process_open_fds", "caseline_asyncio_tasks"):
        match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
        figures[name] = float(match.group(1)) if match else -1
    return figures


@pytest.mark.timeout(SOAK_S + 180)
@pytest.mark.routing(defaults__ring_timeout_s=4, rules__callback__missed__ring_timeout_s=4)
async def test_soak_leaves_no_channels_bridges_tasks_or_fds_and_logs_every_call(
        routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="answer:1500", mgr2="noanswer", mgr3="noanswer",
                 sup1="busy", op1="answer", op2="answer")
    talking = [TALKERS[i % len(TALKERS)] for i in range(int(SOAK_S * TALKING_CPS))]
    cancelling = [CANCELLER] * int(SOAK_S * CANCELLING_CPS)
    await asyncio.sleep(0.5)
    before = await process_figures()
    started = time.monotonic()
    runs = [await sipp.place_calls(tmp_path, talking, hold_ms=1000, rate=TALKING_CPS,
                                   timeout_s=SOAK_S + 120),
            await sipp.place_calls(tmp_path, cancelling, cancel_after_ring_ms=400,
                                   rate=CANCELLING_CPS, timeout_s=SOAK_S + 120)]
    results = [await run.wait(timeout=SOAK_S + 150) for run in runs]
    elapsed = time.monotonic() - started
    answered = sum(1 for _, e in results[0] if e == "answered")
    cancelled = sum(1 for _, e in results[1] if e == "cancelled")
    assert answered == len(talking), results[0]
    assert cancelled == len(cancelling), results[1]

    async with asyncio.timeout(20):  # every call ends and is logged
        while len(await decisions(routing, 100_000)) < len(talking) + len(cancelling):
            await asyncio.sleep(0.2)
        while await asyncio.to_thread(routing.lab.ari, "GET", "/channels"):
            await asyncio.sleep(0.2)
    assert await asyncio.to_thread(routing.lab.ari, "GET", "/bridges") == []
    settle = time.monotonic() + 10  # idle keep-alive connections close after 5 s
    while ((after := await process_figures())["process_open_fds"] > before["process_open_fds"]
           and time.monotonic() < settle):
        await asyncio.sleep(0.5)
    print(f"FIGURE soak_s {elapsed:.0f} calls {len(talking) + len(cancelling)} "
          f"answered {answered} cancelled {cancelled} "
          f"rss_mib {before['process_resident_memory_bytes'] / 2**20:.1f}->"
          f"{after['process_resident_memory_bytes'] / 2**20:.1f} "
          f"fds {before['process_open_fds']:.0f}->{after['process_open_fds']:.0f} "
          f"tasks {before['caseline_asyncio_tasks']:.0f}->{after['caseline_asyncio_tasks']:.0f}")
    assert after["caseline_asyncio_tasks"] <= before["caseline_asyncio_tasks"]
    # the Redis pool may keep a few more connections after a busy period; a leak grows per call
    assert after["process_open_fds"] <= before["process_open_fds"] + 4
    assert after["process_resident_memory_bytes"] < before["process_resident_memory_bytes"] * 1.25
