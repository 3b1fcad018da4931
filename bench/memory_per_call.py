"""Memory per concurrent call: N calls alive at once, RSS and tracemalloc deltas per call.

    python bench/memory_per_call.py            # N = 500 and 5000
    python bench/memory_per_call.py --smoke    # N = 50, a few seconds

Two shapes of "a call in progress":

- minimal: `ari_app.stasis.app.Call` objects on a minimal StasisApp-like holder, each with
  its StasisStart channel (decoded from JSON, as the websocket delivers it), watched, the
  `Routed` result of a real `Router.route` (profile, decision, reasons) attached, and a
  task blocked in `call.wait_for()` on its event queue: what every call holds while it
  waits for Asterisk.
- bridged: whole calls through the real app (StasisApp, CallRouting, Executor, HttpAri)
  on bench/fake_ari.py, each caller bridged with their own manager and held there (the
  fake keeps the manager talking): the coroutine stack of a call in a bridge, its
  Outcome, presence claim, and everything the app keeps per call. The world for this
  has N extra managers in routing.yaml and N category-A clients, one per manager. Calls
  arrive 50 at a time (as the fake offers them); figures are divided by the calls alive
  in the app when measured.

Per-number caches (caller-ID normalisation, number facts, CRM answers) are warmed first
by routing every number once: they grow with distinct callers (bounded), not with
concurrent calls. RSS is measured without tracemalloc (which costs memory itself); the
tracemalloc figure is from a second, identical pass.
Target (issue 9): < 20 KB per concurrent call.
"""
from __future__ import annotations

import asyncio
import gc
import json
import sys
import tempfile
import tracemalloc
from contextlib import AsyncExitStack
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import report  # noqa: E402

report.setup_paths()

from bench import world as w  # noqa: E402
from bench.fake_ari import channel_json  # noqa: E402
from labkit.redis_server import RedisServer  # noqa: E402

NAME = "memory_per_call"
TARGET_KB = 20


class Holder:
    """What a StasisApp keeps of its calls: the channel -> call map and the calls."""

    def __init__(self) -> None:
        from ari_app.stasis.call import Subscriptions

        self.subscriptions = Subscriptions()
        self.calls: dict = {}


def settle() -> None:
    for _ in range(3):
        gc.collect()


def top_sites(snapshot: tracemalloc.Snapshot, n_calls: int, limit: int = 8) -> list[dict]:
    stats = snapshot.statistics("filename")
    out = []
    for s in stats[:limit]:
        frame = s.traceback[0]
        name = frame.filename
        for marker in ("site-packages/", "/lib/python3", "/work/main/"):
            if marker in name:
                name = name.split(marker, 1)[1]
        out.append({"file": name, "bytes_per_call": round(s.size / n_calls), "blocks_per_call": round(s.count / n_calls, 1)})
    return out


# --- minimal ---------------------------------------------------------------------------------


async def minimal_calls(router, callers: list[w.Caller], tag: str) -> tuple[Holder, list[asyncio.Task]]:  # type: ignore[no-untyped-def]
    from ari_app.stasis.call import Call

    holder = Holder()
    tasks = []
    for i, c in enumerate(callers):
        event = json.loads(json.dumps({"type": "StasisStart", "args": ["inbound"],
                                       "channel": channel_json(f"17{tag}.{i}", c.raw, name=f"PJSIP/trunk-{i:08x}")}))
        call = Call(None, event["channel"], holder.subscriptions)  # type: ignore[arg-type]
        holder.calls[call.id] = call
        call.watch(call.id)
        routed = await router.route(call.caller_number, call.id)
        call.routed = routed
        call.priority = routed.decision.priority
        call.step = "manager:mgr1"
        tasks.append(asyncio.create_task(call.wait_for(lambda e: False, timeout=3600), name=f"call-{call.id}"))
    for _ in range(3):
        await asyncio.sleep(0)  # every task is now blocked on its queue
    return holder, tasks


async def drop(holder: Holder, tasks: list[asyncio.Task]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    holder.calls.clear()
    holder.subscriptions.by_channel.clear()
    tasks.clear()


async def bench_minimal(router, callers: list[w.Caller]) -> dict:  # type: ignore[no-untyped-def]
    n = len(callers)
    for c in callers:  # warm the per-number caches
        await router.route(c.raw, "warm")
    settle()
    rss0 = report.rss_bytes()
    holder, tasks = await minimal_calls(router, callers, "a")
    settle()
    rss1 = report.rss_bytes()
    assert sum(1 for t in tasks if not t.done()) == n
    await drop(holder, tasks)
    settle()

    tracemalloc.start(1)
    base = tracemalloc.take_snapshot()
    holder, tasks = await minimal_calls(router, callers, "b")
    settle()
    snap = tracemalloc.take_snapshot()
    traced = sum(s.size_diff for s in snap.compare_to(base, "filename"))
    sites = top_sites(snap.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)]), n)
    tracemalloc.stop()
    await drop(holder, tasks)
    settle()
    return {
        "calls": n,
        "rss_delta_kb_per_call": round((rss1 - rss0) / n / 1024, 2),
        "tracemalloc_kb_per_call": round(traced / n / 1024, 2),
        "rss_after_mb": round(rss1 / 2**20, 1),
        "top_allocation_files_second_pass": sites,
    }


# --- bridged ---------------------------------------------------------------------------------


async def hold_calls(box: w.App, fake: w.FakeAriProcess, callers: list[w.Caller], tag: str) -> int:
    import aiohttp

    n = len(callers)
    box.reset(n)
    calls = [{"id": f"17{tag}.{i}", "number": c.raw} for i, c in enumerate(callers)]
    async with aiohttp.ClientSession() as control:
        async with control.post(f"{fake.url}/bench/calls", json={"calls": calls, "concurrency": n, "hold": True}) as r:
            await r.read()
        for _ in range(6000):
            async with control.get(f"{fake.url}/bench/status") as r:
                status = await r.json()
            if status["held"] + len(box.finished) >= n:
                break
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    return status["held"]


async def release(box: w.App, fake: w.FakeAriProcess) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as control:
        async with control.post(f"{fake.url}/bench/release") as r:
            await r.read()
    await asyncio.wait_for(box.done.wait(), timeout=300)


async def bench_bridged(n: int, seed: int) -> dict:
    from ari_app.ari.http import HttpAri
    from ari_app.main import EVENT_TYPES
    from ari_app.ops.metrics import Metrics

    server = RedisServer.start()
    fake = w.FakeAriProcess()
    try:
        async with AsyncExitStack() as stack:
            with tempfile.TemporaryDirectory(prefix="caseline-bench-") as tmp:
                metrics = Metrics()
                world = await w.make_world(stack, Path(tmp), server.url, known=n, new=0, seed=seed,
                                           managers=n, metrics=metrics)
                core = world.core
                for c in world.known:
                    await core.router.route(c.raw, "warm")
                ari = await stack.enter_async_context(HttpAri(
                    fake.url, "caseline", "bench", "caseline", heartbeat_s=5, event_types=EVENT_TYPES))
                box = w.build_app(core, ari, metrics)
                runner = asyncio.create_task(box.app.run(), name="stasis-app")
                try:
                    await asyncio.wait_for(box.app.connected.wait(), timeout=10)
                    # one warm round (connection pools, first-call allocations), then measure
                    warm = world.known[: min(50, n)]
                    await hold_calls(box, fake, warm, "w")
                    await release(box, fake)
                    settle()
                    rss0 = report.rss_bytes()
                    held = await hold_calls(box, fake, world.known, "a")
                    live = len(box.app.calls)
                    settle()
                    rss1 = report.rss_bytes()
                    await release(box, fake)
                    settle()

                    tracemalloc.start(1)
                    base = tracemalloc.take_snapshot()
                    held2 = await hold_calls(box, fake, world.known, "b")
                    live2 = len(box.app.calls)
                    settle()
                    snap = tracemalloc.take_snapshot()
                    traced = sum(s.size_diff for s in snap.compare_to(base, "filename"))
                    sites = top_sites(snap.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)]),
                                      max(1, live2))
                    tracemalloc.stop()
                    await release(box, fake)
                    outcomes: dict[str, int] = {}
                    for _, o in box.finished:
                        outcomes[o.result] = outcomes.get(o.result, 0) + 1
                finally:
                    runner.cancel()
                    await asyncio.gather(runner, return_exceptions=True)
    finally:
        fake.stop()
        server.stop()
    return {
        "calls": n,
        "held_in_bridges": held,
        "held_in_bridges_second_pass": held2,
        "live_calls_seen_by_app": live,
        "outcomes_second_pass": outcomes,
        "live_calls_second_pass": live2,
        "rss_delta_kb_per_call": round((rss1 - rss0) / max(1, live) / 1024, 2),
        "tracemalloc_kb_per_call": round(traced / max(1, live2) / 1024, 2),
        "rss_after_mb": round(rss1 / 2**20, 1),
        "top_allocation_files_second_pass": sites,
    }


async def main_async(args) -> int:  # type: ignore[no-untyped-def]
    import logging
    import os

    from ari_app.ops.logs import configure_json_logging

    run = report.Run(NAME, args)
    sizes = args.calls or ([50] if args.smoke else [500, 5000])
    run.params.update(sizes=sizes, seed=args.seed, target_kb_per_call=TARGET_KB, known_share_minimal=0.7,
                      logging="JSON lines, INFO, to /dev/null")
    devnull = open(os.devnull, "w")
    configure_json_logging("INFO", mask_numbers=True, stream=devnull)
    try:
        minimal = {}
        bridged = {}
        for n in sizes:
            server = RedisServer.start()
            try:
                async with AsyncExitStack() as stack:
                    with tempfile.TemporaryDirectory(prefix="caseline-bench-") as tmp:
                        known = int(n * 0.7)
                        world = await w.make_world(stack, Path(tmp), server.url, known=known, new=n - known,
                                                   seed=args.seed)
                        minimal[str(n)] = await bench_minimal(world.core.router, world.known + world.new)
            finally:
                server.stop()
            if not args.no_bridged:
                bridged[str(n)] = await bench_bridged(n, args.seed)
        run.results["minimal"] = minimal
        run.results["bridged"] = bridged
    finally:
        logging.getLogger().handlers.clear()
        devnull.close()

    rows = [[f"minimal x{k}", v["calls"], v["rss_delta_kb_per_call"], v["tracemalloc_kb_per_call"], v["rss_after_mb"]]
            for k, v in run.results["minimal"].items()]
    rows += [[f"bridged x{k}", v["calls"], v["rss_delta_kb_per_call"], v["tracemalloc_kb_per_call"], v["rss_after_mb"]]
             for k, v in run.results["bridged"].items()]
    report.print_table("Memory per concurrent call", ("case", "calls", "RSS KB/call", "tracemalloc KB/call", "RSS MB"),
                       rows)
    worst = max([v["rss_delta_kb_per_call"] for v in minimal.values()]
                + [v["tracemalloc_kb_per_call"] for v in minimal.values()])
    run.results["verdict"] = {"minimal_under_20kb": worst < TARGET_KB}
    if bridged:
        worst_b = max([v["rss_delta_kb_per_call"] for v in bridged.values()]
                      + [v["tracemalloc_kb_per_call"] for v in bridged.values()])
        run.results["verdict"]["bridged_under_20kb"] = worst_b < TARGET_KB
    print("verdict:", run.results["verdict"])
    run.write()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = report.parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, nargs="+", default=None, help="concurrent calls (default 500 5000; smoke 50)")
    p.add_argument("--no-bridged", action="store_true", help="only the minimal shape")
    args = p.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
