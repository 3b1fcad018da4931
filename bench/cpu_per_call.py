"""App CPU time per call: route only, and whole calls through the Stasis app on a fake ARI.

    python bench/cpu_per_call.py           # 5000 whole calls, 20000 routes
    python bench/cpu_per_call.py --smoke   # a few seconds

1. route: `time.process_time()` around N `Router.route` calls (known and new callers,
   the wiring of bench/inprocess.py).
2. whole calls: the app as `caseline run` builds it for calls (StasisApp, CallRouting,
   Executor with RedisPresence, OutcomeRecorder writing history and the decision log,
   CallObserver with Prometheus metrics and one JSON log line per decision and outcome,
   written to /dev/null), talking HTTP + websocket through the real `HttpAri` client to
   bench/fake_ari.py running in another process. The fake answers every ring at once and
   the person hangs up right after the bridge, so a call is: StasisStart, identify,
   decide, ring (endpoint state, presence claim, create + dial the leg), bridge, hang-up,
   presence release, history + decision log writes; or the queue / IVR path for the
   callers the policy sends there. CPU is this process only (Redis and the fake ARI are
   other processes); it is what one Caseline process spends per call, apart from the
   time spent waiting for Asterisk.
Target (issue 9): < 1 ms CPU per call.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
import tempfile
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import report  # noqa: E402

report.setup_paths()

from bench import world as w  # noqa: E402
from labkit.redis_server import RedisServer  # noqa: E402

NAME = "cpu_per_call"
TARGET_CPU_US = 1000


async def redis_commands(redis) -> int:  # type: ignore[no-untyped-def]
    stats = await redis.info("commandstats")
    return sum(int(v.get("calls", 0)) for k, v in stats.items() if k != "cmdstat_info")


async def whole_calls(box: w.App, ari_url: str, callers: list[w.Caller], concurrency: int,
                      fake: w.FakeAriProcess, prefix: str, redis) -> dict:  # type: ignore[no-untyped-def]
    import aiohttp

    box.reset(len(callers))
    calls = [{"id": f"{prefix}.{i}", "number": c.raw} for i, c in enumerate(callers)]
    async with aiohttp.ClientSession() as control:
        async with control.get(f"{ari_url}/bench/status") as r:
            before = await r.json()
        fake_cpu = fake.cpu_s()
        commands = await redis_commands(redis)
        with report.timer() as t:
            async with control.post(f"{ari_url}/bench/calls", json={"calls": calls, "concurrency": concurrency}) as r:
                await r.read()
            await asyncio.wait_for(box.done.wait(), timeout=600)
        fake_cpu = fake.cpu_s() - fake_cpu
        commands = await redis_commands(redis) - commands - 1  # the INFO above
        async with control.get(f"{ari_url}/bench/status") as r:
            after = await r.json()
    n = len(callers)
    outcomes = Counter(o.result for _, o in box.finished)
    decided = [int(s * 1e9) for s in box.decided_s]
    return {
        "calls": n,
        "concurrency": concurrency,
        "cpu_per_call_us": round(t["cpu_s"] / n * 1e6, 1),
        "user_per_call_us": round(t["user_s"] / n * 1e6, 1),
        "sys_per_call_us": round(t["sys_s"] / n * 1e6, 1),
        "context_switches_per_call": round(t["ctx_switches"] / n, 2),
        "wall_per_call_us": round(t["wall_s"] / n * 1e6, 1),
        "calls_per_s": round(n / t["wall_s"], 0),
        "fake_ari_cpu_per_call_us": round(fake_cpu / n * 1e6, 1),
        "ari_requests_per_call": round((after["requests"] - before["requests"]) / n, 2),
        "ari_events_per_call": round((after["events"] - before["events"]) / n, 2),
        "redis_commands_per_call": round(commands / n, 2),
        "outcomes": dict(outcomes),
        "identify_decide_in_app": report.summarize_ns(decided),
    }


async def components(core, ari, raw: str, n: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """CPU of the pieces a whole call is made of, each on its own (µs per operation)."""
    from ari_app.ops.logs import log_decision, log_outcome

    out = {}
    with report.timer() as t:
        for _ in range(n):
            await ari.ring("bench-component")  # one REST request, 204 from the fake
    out["ari_request_cpu_us"] = round(t["cpu_s"] / n * 1e6, 1)
    with report.timer() as t:
        for _ in range(n):
            await core.redis.set("caseline:bench:component", "1", ex=60)
    out["redis_command_cpu_us"] = round(t["cpu_s"] / n * 1e6, 1)
    routed = await core.router.route(raw, "component")
    outcome = {"result": "answered", "answered_by": "mgr1", "talk_s": 42, "steps": ["mgr1:answered"],
               "fallbacks": []}
    with report.timer() as t:
        for _ in range(n):
            log_decision("component", routed.profile, routed.decision, routed.seconds)
            log_outcome("component", outcome)
    out["json_log_lines_per_call_cpu_us"] = round(t["cpu_s"] / n * 1e6, 1)
    return out


async def main_async(args) -> int:  # type: ignore[no-untyped-def]
    from ari_app.ari.http import HttpAri
    from ari_app.main import EVENT_TYPES
    from ari_app.ops.logs import configure_json_logging
    from ari_app.ops.metrics import Metrics

    run = report.Run(NAME, args)
    calls = args.calls or (60 if args.smoke else 5000)
    routes = args.routes or (300 if args.smoke else 20_000)
    known_n = 100 if args.smoke else 2000
    run.params.update(whole_calls=calls, routes=routes, known_numbers=known_n, known_share=0.7,
                      concurrency=args.concurrency, seed=args.seed, target_cpu_us=TARGET_CPU_US,
                      logging="JSON lines, INFO, to /dev/null", clock=w.NOW.isoformat())
    rng = random.Random(args.seed + 2)
    devnull = open(os.devnull, "w")
    configure_json_logging("INFO", mask_numbers=True, stream=devnull)
    server = RedisServer.start()
    fake = w.FakeAriProcess()
    try:
        async with AsyncExitStack() as stack:
            with tempfile.TemporaryDirectory(prefix="caseline-bench-") as tmp:
                metrics = Metrics()
                world = await w.make_world(stack, Path(tmp), server.url, known=known_n,
                                           new=routes + 4 * calls, seed=args.seed, metrics=metrics)
                core = world.core
                router = core.router
                for c in world.known:  # warm: CRM cache, normalise and number caches
                    await router.route(c.raw, "warmup")

                # 1. route only
                fresh = iter(world.new)
                cases = {}
                for label, raws in (("known", [rng.choice(world.known).raw for _ in range(routes)]),
                                    ("new", [next(fresh).raw for _ in range(routes)])):
                    with report.timer() as t:
                        for i, raw in enumerate(raws):
                            await router.route(raw, f"cpu-{i}")
                    cases[label] = {"calls": routes, "cpu_per_call_us": round(t["cpu_s"] / routes * 1e6, 1),
                                    "user_per_call_us": round(t["user_s"] / routes * 1e6, 1),
                                    "sys_per_call_us": round(t["sys_s"] / routes * 1e6, 1),
                                    "wall_per_call_us": round(t["wall_s"] / routes * 1e6, 1)}
                run.results["route_only"] = cases

                # 2. whole calls through the app on the fake ARI
                ari = await stack.enter_async_context(HttpAri(
                    fake.url, "caseline", "bench", "caseline", heartbeat_s=5, event_types=EVENT_TYPES))
                box = w.build_app(core, ari, metrics)
                runner = asyncio.create_task(box.app.run(), name="stasis-app")
                try:
                    await asyncio.wait_for(box.app.connected.wait(), timeout=10)

                    def mix(n: int) -> list[w.Caller]:
                        return [rng.choice(world.known) if rng.random() < 0.7 else next(fresh) for _ in range(n)]

                    await whole_calls(box, fake.url, mix(min(200, calls)), 1, fake, "warm", core.redis)  # first-call costs
                    whole = {}
                    for conc in sorted({1, args.concurrency}):
                        whole[f"x{conc}"] = await whole_calls(box, fake.url, mix(calls), conc, fake, f"c{conc}",
                                                              core.redis)
                    run.results["whole_calls"] = whole
                    run.results["components"] = await components(core, ari, world.known[0].raw,
                                                                 200 if args.smoke else 3000)
                finally:
                    runner.cancel()
                    await asyncio.gather(runner, return_exceptions=True)
    finally:
        fake.stop()
        server.stop()
        logging.getLogger().handlers.clear()
        devnull.close()

    r = run.results
    report.print_table("CPU per routed call (Router.route only)",
                       ("case", "calls", "CPU µs/call", "user µs", "sys µs", "wall µs/call"),
                       [[k, v["calls"], v["cpu_per_call_us"], v["user_per_call_us"], v["sys_per_call_us"],
                         v["wall_per_call_us"]] for k, v in r["route_only"].items()])
    report.print_table("Whole calls through StasisApp + HttpAri on a fake ARI (70 % known, 30 % new callers)",
                       ("concurrency", "calls", "CPU µs/call", "user µs", "sys µs", "wall µs/call", "calls/s",
                        "ARI req/call", "events/call", "Redis cmd/call", "outcomes"),
                       [[k, v["calls"], v["cpu_per_call_us"], v["user_per_call_us"], v["sys_per_call_us"],
                         v["wall_per_call_us"], v["calls_per_s"],
                         v["ari_requests_per_call"], v["ari_events_per_call"], v["redis_commands_per_call"],
                         v["outcomes"]]
                        for k, v in r["whole_calls"].items()])
    print("components (CPU µs each):", r["components"])
    r["verdict"] = {
        "route_cpu_under_1ms": max(v["cpu_per_call_us"] for v in r["route_only"].values()) < TARGET_CPU_US,
        "whole_call_cpu_under_1ms": max(v["cpu_per_call_us"] for v in r["whole_calls"].values()) < TARGET_CPU_US,
    }
    print("verdict:", r["verdict"])
    run.write()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = report.parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=None, help="whole calls per case (default 5000; smoke 60)")
    p.add_argument("--routes", type=int, default=None, help="Router.route calls per case (default 20000)")
    p.add_argument("--concurrency", type=int, default=10, help="calls in flight for the second whole-call case")
    args = p.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
