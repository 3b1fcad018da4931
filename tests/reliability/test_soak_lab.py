"""Soak (issue 10.3): a steady call rate with random outcomes, then nothing may be left over.

CASELINE_SOAK_S sets the duration (default 60 s in the suite; the 10-minute figures in
docs/reliability.md come from CASELINE_SOAK_S=600). Outcomes: the manager answers (mgr1,
after 1.5 s; busy in our own view when two of their calls overlap), does not answer (mgr2,
ring timeout -> supervisor, who replies 486 busy -> operators' queue), new callers in the
queue, and callers who hang up while the manager's phone (mgr3) rings.
"""
from __future__ import annotations

import os
import re
import time

import pytest

from labkit import sipp
from tests.support.callers import CLAIM_MGR2, DELIVERY_MGR3, UNKNOWN, VIP_A_MGR1
from tests.support.decisions import decisions
from tests.support.eventually import eventually
from tests.support.lab import idle
from tests.support.ops import ops_get
from tests.support.phones import start_phones

pytestmark = pytest.mark.lab

SOAK_S = int(os.environ.get("CASELINE_SOAK_S", "60"))
TALKING_CPS = 0.6
CANCELLING_CPS = 0.2
# VIP of mgr1 (answers), claim of mgr2 (no answer -> sup1 busy -> queue), new (queue)
TALKERS = [VIP_A_MGR1, CLAIM_MGR2, UNKNOWN]
CANCELLER = DELIVERY_MGR3  # delivery today -> mgr3, who never answers: they hang up first
RSS = "process_resident_memory_bytes"


async def process_figures() -> dict[str, float]:
    text = await ops_get("/metrics")
    figures = {}
    for name in (RSS, "process_open_fds", "caseline_asyncio_tasks"):
        match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
        figures[name] = float(match.group(1)) if match else -1
    return figures


async def settled_figures() -> dict[str, float]:
    """The figures once start-up is over: region names load in the background (~100 MB),
    so the baseline waits until the resident memory stops growing between two polls."""
    readings: list[dict[str, float]] = []

    async def steady() -> dict[str, float]:
        readings.append(await process_figures())
        assert len(readings) > 1, "one reading so far"
        assert abs(readings[-1][RSS] - readings[-2][RSS]) < 2**20, "RSS still growing"
        return readings[-1]

    return await eventually(steady, timeout=15, interval=0.25)


def no_leak(before: dict[str, float], after: dict[str, float]) -> None:
    assert after["caseline_asyncio_tasks"] <= before["caseline_asyncio_tasks"]
    # the Redis pool may keep a few more connections after a busy period; a leak grows per call
    assert after["process_open_fds"] <= before["process_open_fds"] + 4
    assert after[RSS] < before[RSS] * 1.25


@pytest.mark.timeout(SOAK_S + 180)
@pytest.mark.routing(defaults__ring_timeout_s=4, rules__callback__missed__ring_timeout_s=4)
async def test_soak_leaves_no_channels_bridges_tasks_or_fds_and_logs_every_call(
        routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="answer:1500", mgr2="noanswer", mgr3="noanswer",
                 sup1="busy", op1="answer", op2="answer")
    talking = [TALKERS[i % len(TALKERS)] for i in range(int(SOAK_S * TALKING_CPS))]
    cancelling = [CANCELLER] * int(SOAK_S * CANCELLING_CPS)
    before = await settled_figures()
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

    calls = len(talking) + len(cancelling)

    async def all_logged() -> None:
        assert len(await decisions(routing, 100_000)) >= calls

    await eventually(all_logged, timeout=20, interval=0.2)  # every call ends and is logged
    await eventually(idle, routing.lab, timeout=20, interval=0.2)

    async def settled() -> dict[str, float]:
        after = await process_figures()
        no_leak(before, after)
        return after

    # idle keep-alive connections close after 5 s
    after = await eventually(settled, timeout=10, interval=0.5)
    print(f"FIGURE soak_s {elapsed:.0f} calls {calls} "
          f"answered {answered} cancelled {cancelled} "
          f"rss_mib {before[RSS] / 2**20:.1f}->{after[RSS] / 2**20:.1f} "
          f"fds {before['process_open_fds']:.0f}->{after['process_open_fds']:.0f} "
          f"tasks {before['caseline_asyncio_tasks']:.0f}->{after['caseline_asyncio_tasks']:.0f}")
