"""identify + decide per call through the real wiring, decide alone, and CPU per routed call.

    python bench/inprocess.py            # 20k known-caller and 20k new-caller calls
    python bench/inprocess.py --smoke    # a few seconds: checks the runner, figures mean nothing

1. `Router.route` as `caseline run` wires it (ari_app.main.build_core): RedisHistoryStore on
   a real redis-server (loopback), the file CRM behind CrmService, LiveConfig from the
   shipped routing.yaml / legal_entities.yaml, region names loaded. Calls are routed one
   after another (concurrency 1) and, as a second case, 10 at a time.
   - known: callers with history (callback 10 %, repeat 20 %, old 70 %), half of them in the
     CRM; every number was routed once before measuring, so the CRM cache is warm and the
     working set fits the in-process caches (a busy hour's regulars).
   - new: a number never seen before on every call: no history, not in the CRM, every
     in-process cache misses (cold path).
2. `ari_app.core.decide.decide` alone on the profiles produced by (1).
3. CPU: `time.process_time()` around the same loops (this process only: Redis is another
   process), divided by the number of calls.
Targets (issue 9): route p99 < 1 ms, decide p99 < 50 µs, CPU per routed call < 1 ms.
"""
from __future__ import annotations

import asyncio
import gc
import random
import sys
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import report  # noqa: E402

report.setup_paths()

from bench import world as w  # noqa: E402
from labkit.redis_server import RedisServer  # noqa: E402

NAME = "inprocess"
TARGETS = {"route_p99_us": 1000, "decide_p99_us": 50, "cpu_per_route_us": 1000}


def gc_timer(out: list[tuple[int, int]]):  # type: ignore[no-untyped-def]
    """A gc callback recording (generation, pause ns) of every collection."""
    started = [0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter_ns()
        else:
            out.append((info["generation"], time.perf_counter_ns() - started[0]))
    return callback


def fired_rule(decision) -> str:  # type: ignore[no-untyped-def]
    """The rule that decided (the first reason that is not an input or degradation note)."""
    for r in decision.reasons:
        if r.rule in ("inputs", "clock.naive", "hours.unknown") or r.rule.startswith(("history.", "crm.")):
            continue
        return r.rule
    return "?"


async def route_sequential(router, raws: list[str], keep: int = 2000) -> tuple[list[int], dict[str, float], list]:  # type: ignore[no-untyped-def]
    """Route one call after the other. Only the first `keep` results are kept: holding all
    of them would grow the heap and make the measurement pay for the GC passes over it."""
    samples: list[int] = []
    routed = []
    gc_before = sum(s["collections"] for s in gc.get_stats())
    clock = time.perf_counter_ns
    with report.timer() as t:
        for i, raw in enumerate(raws):
            start = clock()
            r = await router.route(raw, f"bench-{i}")
            samples.append(clock() - start)
            if i < keep:
                routed.append(r)
            del r
    t["gc_collections"] = sum(s["collections"] for s in gc.get_stats()) - gc_before
    return samples, t, routed


async def route_concurrent(router, raws: list[str], concurrency: int) -> tuple[list[int], dict[str, float]]:  # type: ignore[no-untyped-def]
    samples: list[int] = []
    clock = time.perf_counter_ns

    async def one(i: int, raw: str) -> None:
        start = clock()
        await router.route(raw, f"bench-c{i}")
        samples.append(clock() - start)

    with report.timer() as t:
        for i in range(0, len(raws), concurrency):
            await asyncio.gather(*(one(i + j, raw) for j, raw in enumerate(raws[i:i + concurrency])))
    return samples, t


def bench_decide(profiles: list, policy, now, iterations: int) -> tuple[dict, dict[str, dict]]:  # type: ignore[no-untyped-def]
    from ari_app.core.decide import decide

    clock = time.perf_counter_ns
    by_rule: dict[str, list[int]] = {}
    rules = [fired_rule(decide(p, policy, now)) for p in profiles]
    samples: list[int] = []
    n = len(profiles)
    per_profile: list[list[int]] = [[] for _ in range(n)]
    for i in range(iterations):
        p = profiles[i % n]
        start = clock()
        decide(p, policy, now)
        d = clock() - start
        samples.append(d)
        per_profile[i % n].append(d)
        by_rule.setdefault(rules[i % n], []).append(d)
    overall = report.summarize_ns(samples)
    # The median of each profile's repeated timings is its own cost, free of the machine's
    # stalls; the slowest of them is the worst case decide() itself has.
    medians = sorted(sorted(v)[len(v) // 2] for v in per_profile if v)
    if medians:
        overall["per_profile_median_p99_us"] = round(report.percentile(medians, 99) / 1000, 2)
        overall["per_profile_median_max_us"] = round(medians[-1] / 1000, 2)
    return overall, {k: report.summarize_ns(v) for k, v in sorted(by_rule.items())}


def case_result(samples: list[int], t: dict[str, float], calls: int) -> dict:
    out = dict(report.summarize_ns(samples))
    out["cpu_per_call_us"] = round(t["cpu_s"] / calls * 1e6, 1)
    out["wall_per_call_us"] = round(t["wall_s"] / calls * 1e6, 1)
    out["calls_per_s"] = round(calls / t["wall_s"], 0)
    if "gc_collections" in t:
        out["gc_collections"] = int(t["gc_collections"])
    return out


async def main_async(args) -> int:  # type: ignore[no-untyped-def]
    run = report.Run(NAME, args)
    calls = args.calls or (500 if args.smoke else 20_000)
    known_n = args.known or (100 if args.smoke else 2000)
    decide_iters = args.decide_iterations or (2000 if args.smoke else 200_000)
    concurrency = args.concurrency
    run.params.update(calls=calls, known_numbers=known_n, decide_iterations=decide_iters,
                      concurrency=concurrency, seed=args.seed, clock=w.NOW.isoformat(), gc_freeze=args.gc_freeze,
                      config="shipped config/ + synthetic clients (bench/world.py)", targets=TARGETS)
    rng = random.Random(args.seed + 1)
    server = RedisServer.start()
    try:
        async with AsyncExitStack() as stack:
            with tempfile.TemporaryDirectory(prefix="caseline-bench-") as tmp:
                world = await w.make_world(stack, Path(tmp), server.url, known=known_n,
                                           new=calls * 2, seed=args.seed)
                core = world.core
                router = core.router
                run.params.update(history_contacts=world.contacts,
                                  known_in_crm=sum(c.in_crm for c in world.known),
                                  crm_clients=len(core.crm.client) if hasattr(core.crm.client, "__len__") else None)
                # warm up: every known number once (CRM cache, normalise cache, zone data)
                for c in world.known:
                    await router.route(c.raw, "warmup")
                known_raws = [rng.choice(world.known).raw for _ in range(calls)]
                new_raws = [c.raw for c in world.new[:calls]]
                new_raws_c = [c.raw for c in world.new[calls:2 * calls]]
                # Drop the bench's own objects (callers and their contacts, ~100k tracked
                # objects): the GC passes measured below must walk the app's heap only.
                world.known.clear()
                world.new.clear()
                gc.collect()
                run.params["gc_tracked_objects_at_start"] = len(gc.get_objects())
                if args.gc_freeze:  # what ari_app.main could do once started (docs/benchmarks.md)
                    gc.freeze()
                gc_pauses: list[tuple[int, int]] = []
                gc.callbacks.append(gc_timer(gc_pauses))

                cases = {}
                s, t, routed_known = await route_sequential(router, known_raws)
                cases["known"] = case_result(s, t, calls)
                s, t, routed_new = await route_sequential(router, new_raws)
                cases["new"] = case_result(s, t, calls)
                s, t = await route_concurrent(router, known_raws, concurrency)
                cases[f"known_x{concurrency}"] = case_result(s, t, calls)
                s, t = await route_concurrent(router, new_raws_c, concurrency)
                cases[f"new_x{concurrency}"] = case_result(s, t, calls)
                run.results["route"] = cases
                gc.callbacks.clear()
                run.results["gc_during_routes"] = {
                    f"gen{g}": {"collections": len(p), "max_ms": round(max(p) / 1e6, 2) if p else 0.0,
                                "total_ms": round(sum(p) / 1e6, 1)}
                    for g in range(3) for p in [[d for gg, d in gc_pauses if gg == g]]}
                run.results["mix"] = {  # from the first 2000 calls of each case
                    "known_classes": dict(Counter(str(r.profile.history.cls) for r in routed_known)),
                    "known_crm": dict(Counter(str(r.profile.crm.status) for r in routed_known)),
                    "known_rules": dict(Counter(fired_rule(r.decision) for r in routed_known).most_common()),
                    "known_services": dict(Counter(str(r.decision.service) for r in routed_known)),
                    "new_rules": dict(Counter(fired_rule(r.decision) for r in routed_new).most_common()),
                    "with_region_name": sum(1 for r in routed_known + routed_new if r.profile.environment.region),
                    "profiles": len(routed_known) + len(routed_new),
                }
                run.results["degraded_history_in_sample"] = sum(
                    1 for r in routed_known + routed_new if r.profile.history.status.value not in ("ok", "skipped"))

                # decide alone, on the profiles the router produced
                profiles = [r.profile for r in routed_known[:2000]] + [r.profile for r in routed_new[:500]]
                policy = core.config.current.policy
                overall, by_rule = bench_decide(profiles, policy, w.NOW, decide_iters)
                run.results["decide"] = {"all": overall, "by_rule": by_rule}
    finally:
        server.stop()

    r = run.results
    report.print_table("Router.route (identify + decide), real Redis on loopback", report.STAT_HEADER + ("CPU µs/call",),
                       [report.stat_row(k, v) + [v["cpu_per_call_us"]] for k, v in r["route"].items()])
    print("GC during the route cases:", r["gc_during_routes"])
    report.print_table("decide() alone", report.STAT_HEADER,
                       [report.stat_row("all", r["decide"]["all"])]
                       + [report.stat_row(k, v) for k, v in r["decide"]["by_rule"].items()])
    d = r["decide"]["all"]
    print(f"decide() per-profile medians (each profile timed {decide_iters // max(1, len(profiles))}x): "
          f"p99 {d.get('per_profile_median_p99_us')} µs, slowest {d.get('per_profile_median_max_us')} µs")
    known = r["route"]["known"]
    new = r["route"]["new"]
    r["verdict"] = {
        "route_p99_known_under_1ms": known["p99_us"] < TARGETS["route_p99_us"],
        "route_p99_new_under_1ms": new["p99_us"] < TARGETS["route_p99_us"],
        "decide_p99_under_50us": r["decide"]["all"]["p99_us"] < TARGETS["decide_p99_us"],
        "decide_p90_under_50us": r["decide"]["all"]["p90_us"] < TARGETS["decide_p99_us"],
        "decide_slowest_profile_median_under_50us":
            r["decide"]["all"].get("per_profile_median_max_us", 1e9) < TARGETS["decide_p99_us"],
        "cpu_per_route_under_1ms": max(known["cpu_per_call_us"], new["cpu_per_call_us"]) < TARGETS["cpu_per_route_us"],
    }
    print("\nverdict:", ", ".join(f"{k}={v}" for k, v in r["verdict"].items()))
    run.write()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = report.parser(__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=None, help="calls per case (default 20000; smoke 500)")
    p.add_argument("--known", type=int, default=None, help="distinct known numbers (default 2000; smoke 100)")
    p.add_argument("--decide-iterations", type=int, default=None, help="decide() calls (default 200000)")
    p.add_argument("--concurrency", type=int, default=10, help="calls in flight for the *_xN cases")
    p.add_argument("--gc-freeze", action="store_true",
                   help="gc.freeze() after start-up (not what the app does today; shows the effect)")
    args = p.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
