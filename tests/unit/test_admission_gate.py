"""Admission control's dialplan gate (stasis/admission_gate.py) against the in-memory ARI.

While admission sheds, the gate's dialplan global closes [caseline-route] and [caseline-agi]
(new calls skip Stasis and AGI); it reopens once shedding has stopped for `hold_s`; it is
sent again after a reconnect and after a failed publish; the dialplan files act on it.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ari_app.ari.fake import FakeAri
from ari_app.ari.interface import AriUnavailable
from ari_app.core.admission import ShedTarget
from ari_app.history.cdr import parse_row
from ari_app.main import count_gate_shed
from ari_app.ops.metrics import Metrics
from ari_app.stasis.admission_gate import (
    GATE_VARIABLE,
    PRIORITY_VARIABLE,
    QUEUE_VARIABLE,
    SHED_USERFIELD,
    DialplanGate,
)

DIALPLAN = Path(__file__).resolve().parents[2] / "dialplan"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def gated() -> AsyncIterator[tuple[FakeAri, DialplanGate, Clock]]:
    ari, clock = FakeAri(), Clock()
    gate = DialplanGate(ari, lambda: ShedTarget(20, "benchq"), hold_s=5.0, clock=clock)
    task = asyncio.create_task(gate.run())
    try:
        yield ari, gate, clock
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def shed(ari: FakeAri) -> bool:
    return ari.globals.get(GATE_VARIABLE) == "shed"


async def test_shedding_closes_the_gate_with_the_cheap_priority_then_it_reopens_after_the_hold(gated):
    ari, gate, clock = gated
    gate.admission_changed("calls_in_progress")
    await ari.until(lambda: shed(ari))
    assert (ari.globals[PRIORITY_VARIABLE], ari.globals[QUEUE_VARIABLE]) == ("20", "benchq")
    # the priority goes first: a call never meets a closed gate with an old priority
    assert [a["name"] for m, a in ari.requests if m == "set_global"][-3:] == [
        PRIORITY_VARIABLE, QUEUE_VARIABLE, GATE_VARIABLE]

    gate.admission_changed(None)  # the load dropped at once (no calls reach us any more)...
    await asyncio.sleep(0)
    assert shed(ari) and gate.wanted_closed()  # ...but the gate holds
    clock.now += 5.1
    await ari.until(lambda: ari.globals.get(GATE_VARIABLE) == "", timeout=2)
    assert gate.closings == 1


async def test_shedding_again_within_the_hold_keeps_the_gate_closed(gated):
    ari, gate, clock = gated
    gate.admission_changed("loop_lag")
    await ari.until(lambda: shed(ari))
    gate.admission_changed(None)
    clock.now += 3
    gate.admission_changed("loop_lag")
    gate.admission_changed(None)
    clock.now += 3  # 6 s after the first, 3 s after the last shedding: still closed
    await asyncio.sleep(0.6)
    assert shed(ari) and len([m for m, _ in ari.requests if m == "set_global"]) == 4  # open, then closed once


async def test_after_a_reconnect_the_gate_is_sent_again(gated):
    ari, gate, _ = gated
    gate.admission_changed("ari_latency")
    await ari.until(lambda: shed(ari))
    ari.globals.clear()  # Asterisk restarted: its globals are gone
    gate.republish()
    await ari.until(lambda: shed(ari))


async def test_a_failed_publish_is_retried(gated, monkeypatch):
    ari, gate, _ = gated
    real = ari.set_global
    failures = [AriUnavailable("connection refused")]

    async def flaky(name: str, value: str) -> None:
        if failures:
            raise failures.pop()
        await real(name, value)

    monkeypatch.setattr(ari, "set_global", flaky)
    gate.admission_changed("calls_in_progress")
    await ari.until(lambda: shed(ari), timeout=3)


async def test_nothing_is_sent_while_ari_is_not_connected_and_the_gate_is_published_once_it_is():
    """A restarted Asterisk answers 503 "not booted" until it is: the gate waits for the
    events connection (StasisApp.connected) instead of retrying into it (CI of 2026-12-08)."""
    ari, clock = FakeAri(), Clock()
    gate = DialplanGate(ari, lambda: ShedTarget(20, "benchq"), hold_s=5.0, clock=clock)
    gate.ready = asyncio.Event()
    task = asyncio.create_task(gate.run())
    try:
        gate.admission_changed("calls_in_progress")
        for _ in range(20):
            await asyncio.sleep(0)
        assert [m for m, _ in ari.requests if m == "set_global"] == []
        gate.ready.set()
        await ari.until(lambda: shed(ari))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_the_dialplan_checks_the_gate_before_stasis_and_before_agi():
    route = (DIALPLAN / "extensions.conf").read_text()
    agi = (DIALPLAN / "caseline-agi.conf").read_text()
    gate = re.escape(f'$["${{{GATE_VARIABLE}}}" = "shed"]?caseline-shed,s,1')
    first_of_route = re.search(r"\[caseline-route\][^\[]*?exten => s,1,(.*)", route).group(1)
    assert re.search(gate, first_of_route), "the gate is the route's first priority"
    walker = agi.split("[caseline-agi]\n", 1)[1]
    before_agi = walker.split("Gosub(caseline-agi-ask", 1)[0]
    assert f'$["${{{GATE_VARIABLE}}}" = "shed"]?gate-shed' in before_agi, "the gate comes before AGI"
    # the walker's own shed path does what [caseline-shed] does, then its queue (a FreePBX
    # site's too, see caseline-freepbx.conf)
    own = walker[walker.index("same => n(gate-shed)"):]
    assert f"CDR(userfield)={SHED_USERFIELD}" in own and f"CASELINE_QUEUE=${{{QUEUE_VARIABLE}}}" in own
    assert f"FILTER(0-9,${{{PRIORITY_VARIABLE}}})" in own and "Goto(to-queue)" in own
    shed_context = re.search(r"\[caseline-shed\](.*?)\n\[", route, re.S).group(1)
    assert f"CDR(userfield)={SHED_USERFIELD}" in shed_context
    assert f"CASELINE_QUEUE=${{{QUEUE_VARIABLE}}}" in shed_context
    assert f"FILTER(0-9,${{{PRIORITY_VARIABLE}}})" in shed_context and "Goto(operators,s,1)" in shed_context


def test_calls_the_gate_shed_are_counted_from_their_cdrs():
    metrics = Metrics()
    count = count_gate_shed(metrics)
    row = ["", "+79161234567", "s", "operators", "", "PJSIP/trunk-00000001", "", "Queue",
           "operators", "2026-12-07 10:00:00", "", "2026-12-07 10:00:05", "5", "0", "NO ANSWER",
           "DOCUMENTATION", "1.1", SHED_USERFIELD]
    count(parse_row(row))
    count(parse_row(row[:-1] + ["caseline-agi:ok"]))
    assert metrics.calls_shed.labels(reason="dialplan_gate")._value.get() == 1


async def test_at_start_the_gate_is_opened_whatever_a_dead_predecessor_left(gated):
    ari, _, _ = gated
    await ari.until(lambda: GATE_VARIABLE in ari.globals)
    assert ari.globals[GATE_VARIABLE] == ""
