"""Soak with transfers (issue 16): learning keeps per-call state only while a call's records
arrive, and Caseline's memory stays flat however many transferred calls go by.

Calls alternate between a VIP client of mgr1 and a client of mgr2 with an open claim; both
managers' phones answer and blind-transfer to mgr3 inside Caseline's bridge (when a manager
is still on their previous call, the vip chain escalates to sup1, who answers; when sup1 is
on a call too, the operators' queue). CASELINE_TRANSFER_SOAK_CALLS sets the number of calls
(default 120 in the suite;
the 1,000-call figures in docs/reliability.md come from CASELINE_TRANSFER_SOAK_CALLS=1000).
"""
from __future__ import annotations

import os
import re
import time

import pytest

from labkit import sipp
from tests.reliability.test_soak_lab import RSS, no_leak, process_figures, settled_figures
from tests.support.callers import CLAIM_MGR2, VIP_A_MGR1
from tests.support.decisions import decisions
from tests.support.eventually import eventually
from tests.support.lab import idle
from tests.support.ops import ops_get
from tests.support.phones import start_phones

pytestmark = pytest.mark.lab

CALLS = int(os.environ.get("CASELINE_TRANSFER_SOAK_CALLS", "120"))
CPS = 2.0


async def gathering() -> float:
    text = await ops_get("/metrics")
    match = re.search(r"^caseline_learning_calls_open ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, "caseline_learning_calls_open on /metrics"
    return float(match.group(1))


@pytest.mark.timeout(int(CALLS / CPS) + 240)
async def test_transferred_calls_leave_no_learning_state_and_memory_stays_flat(
        routing, phones, tmp_path):
    start_phones(phones, tmp_path, mgr1="transfer>mgr3:300", mgr2="transfer>mgr3:300",
                 mgr3="answer", sup1="answer", op1="answer", op2="answer")
    before = await settled_figures()
    started = time.monotonic()
    numbers = [(VIP_A_MGR1, CLAIM_MGR2)[i % 2] for i in range(CALLS)]
    # 1 s calls: about half of them end in the operators' queue (both people of their chain
    # on a call), and two operators serve a queue call in ~2 s (the call, then the queue's
    # member check), so longer calls would outgrow the queue and wait past the run
    run = await sipp.place_calls(tmp_path, numbers, hold_ms=1000, rate=CPS,
                                 timeout_s=int(CALLS / CPS) + 120)
    events = await run.wait(timeout=CALLS / CPS + 150)
    elapsed = time.monotonic() - started
    answered = sum(1 for _, e in events if e == "answered")
    assert answered == CALLS, [e for e in events if e[1] != "hung_up"][:10]

    async def all_logged() -> None:
        assert len(await decisions(routing, 100_000)) >= CALLS

    await eventually(all_logged, timeout=30, interval=0.5)
    await eventually(idle, routing.lab, timeout=20, interval=0.2)
    entries = await decisions(routing, 100_000)
    transferred = sum(1 for e in entries[:CALLS] if "transfer:mgr3" in e["steps"])
    # a manager still on their previous call is busy: those calls escalate to sup1 instead
    assert transferred >= CALLS // 4, f"only {transferred} of {CALLS} calls were transferred"
    # every call ended at a phone: a person, or (both managers and sup1 on calls) the queue
    outcomes = {e["outcome"] for e in entries[:CALLS]}
    assert outcomes <= {"answered", "queue"}, outcomes

    async def learned_everything() -> None:
        assert await gathering() == 0

    await eventually(learned_everything, timeout=30, interval=0.5)  # per-call state dropped

    async def settled() -> dict[str, float]:
        after = await process_figures()
        no_leak(before, after)
        return after

    after = await eventually(settled, timeout=10, interval=0.5)
    print(f"FIGURE transfer_soak_s {elapsed:.0f} calls {CALLS} transferred {transferred} "
          f"rss_mib {before[RSS] / 2**20:.1f}->{after[RSS] / 2**20:.1f} "
          f"fds {before['process_open_fds']:.0f}->{after['process_open_fds']:.0f} "
          f"tasks {before['caseline_asyncio_tasks']:.0f}->{after['caseline_asyncio_tasks']:.0f}")
