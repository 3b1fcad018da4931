"""Admission control's measures, for real: the event loop's lag seen by the monitor task,
every ARI request's duration through the real HttpAri and an HTTP server, and what
/metrics shows of them."""
from __future__ import annotations

import asyncio
import time

from aiohttp import web

from ari_app.ari.http import HttpAri
from ari_app.ari.interface import AriUnavailable, ChannelGone
from ari_app.core.admission import LOOP_LAG, Bounds
from ari_app.ops.load import Admission, watch_loop_lag
from ari_app.ops.metrics import Metrics
from tests.support.eventually import eventually


def gauge(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_a_stalled_event_loop_is_measured_sheds_new_calls_and_then_routing_resumes() -> None:
    metrics = Metrics()
    admission = Admission(Bounds(loop_lag_s=0.05, hold_s=0.0), lambda: 0, metrics=metrics, window_s=0.1)
    monitor = asyncio.create_task(watch_loop_lag(admission, interval_s=0.02))
    try:
        await eventually(lambda: admission.lag_samples > 0, interval=0.01)  # the monitor runs
        assert admission.check_new_call() is None
        # the stimulus, not a wait: one callback hogs the loop for 0.3 s, as a CPU-bound burst does
        asyncio.get_running_loop().call_soon(time.sleep, 0.3)

        await eventually(lambda: admission.gate.shedding(LOOP_LAG), interval=0.01)
        assert admission.check_new_call() == LOOP_LAG
        assert gauge(metrics, "caseline_event_loop_lag_seconds") >= 0.05
        assert gauge(metrics, "caseline_admission_shedding", reason=LOOP_LAG) == 1
        assert gauge(metrics, "caseline_calls_shed_total", reason=LOOP_LAG) == 1

        # the stall ages out of the window: routing resumes by itself, without a call
        await eventually(lambda: not admission.gate.shedding(LOOP_LAG), interval=0.01)
        assert gauge(metrics, "caseline_admission_shedding", reason=LOOP_LAG) == 0
        assert admission.check_new_call() is None
    finally:
        monitor.cancel()
        await asyncio.gather(monitor, return_exceptions=True)


async def test_disabled_admission_measures_but_never_sheds() -> None:
    metrics = Metrics()
    admission = Admission(Bounds(calls_in_progress=1), lambda: 5, enabled=False, metrics=metrics)
    assert admission.check_new_call() is None
    assert gauge(metrics, "caseline_calls_in_progress") == 5
    assert gauge(metrics, "caseline_admission_shedding", reason="calls_in_progress") == 0


async def test_every_ari_request_is_timed_answered_failed_or_unreachable() -> None:
    answer = asyncio.Event()

    async def slow_continue(request: web.Request) -> web.Response:
        await answer.wait()
        return web.Response(status=204)

    async def gone(request: web.Request) -> web.Response:
        return web.json_response({"message": "Channel not found"}, status=404)

    app = web.Application()
    app.router.add_post("/ari/channels/slow/continue", slow_continue)
    app.router.add_post("/ari/channels/gone/continue", gone)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    admission = Admission(Bounds(ari_latency_s=0.05), lambda: 0)
    samples: list[float] = []

    def on_latency(seconds: float) -> None:
        samples.append(seconds)
        admission.ari_request(seconds)

    try:
        async with HttpAri(url, "u", "p", "caseline") as ari:
            ari.on_latency = on_latency
            asyncio.get_running_loop().call_later(0.2, answer.set)  # Asterisk answers late
            await ari.continue_in_dialplan("slow", "operators")
            try:
                await ari.continue_in_dialplan("gone", "operators")
            except ChannelGone:
                pass
    finally:
        await runner.cleanup()
    async with HttpAri(url, "u", "p", "caseline") as ari:  # nobody listens there now
        ari.on_latency = on_latency
        try:
            await ari.continue_in_dialplan("slow", "operators")
        except AriUnavailable:
            pass

    assert len(samples) == 3
    assert samples[0] >= 0.2 and samples[1] < 0.2 and samples[2] < 0.2
    assert admission.check_new_call() == "ari_latency"  # the mean of the three is over 0.05 s
