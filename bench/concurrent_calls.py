"""N concurrent calls held in bridges through the real lab (no media): what it costs.

Caseline routes N callers to their manager (mgr1, a SIPp phone that takes every call;
`one_call_per_person: false`), all stay bridged, and we read: Caseline's RSS, open fds and
asyncio tasks (its /metrics), event-loop responsiveness (ops /healthz round trips),
Asterisk's RSS and its taskprocessor queues (`core show taskprocessors`); then every call
is hung up and we check that everything returns to where it was.

  .venv/bin/python bench/concurrent_calls.py --calls 500 --out bench/results/concurrent_500.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from labkit import asterisk as lab_asterisk  # noqa: E402
from labkit import root as lab_root  # noqa: E402
from labkit import sipp  # noqa: E402
from labkit.caseline_process import CaselineProcess, ari  # noqa: E402
from labkit.config_copy import copy_config  # noqa: E402
from labkit.redis_server import RedisServer  # noqa: E402

OPS = "http://127.0.0.1:8090"
VIP = "+79161234567"


async def caseline_figures(http: aiohttp.ClientSession) -> dict[str, float]:
    token = lab_root.lab_secrets()["CASELINE_OPS_TOKEN"]
    async with http.get(f"{OPS}/metrics", headers={"Authorization": f"Bearer {token}"}) as r:
        text = await r.text()
    out = {}
    for name in ("process_resident_memory_bytes", "process_open_fds", "caseline_asyncio_tasks",
                 "process_cpu_seconds_total"):
        m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
        out[name] = float(m.group(1)) if m else -1.0
    lags = []
    for _ in range(20):
        started = time.perf_counter()
        async with http.get(f"{OPS}/healthz") as r:
            await r.read()
        lags.append((time.perf_counter() - started) * 1000)
    lags.sort()
    out["healthz_ms_p50"] = round(lags[len(lags) // 2], 2)
    out["healthz_ms_max"] = round(lags[-1], 2)
    return out


def asterisk_figures() -> dict[str, float]:
    rss = 0.0
    status = None
    for candidate in Path("/proc").glob("[0-9]*"):  # the lab's (chroot'd) asterisk process
        try:
            if (candidate / "comm").read_text().strip() == "asterisk":
                status = candidate / "status"
        except OSError:
            continue
    if status and status.exists():
        m = re.search(r"VmRSS:\s+(\d+) kB", status.read_text())
        rss = int(m.group(1)) / 1024 if m else 0.0
    in_queue = high_water = 0  # columns: Processor, Processed, In Queue, Max Depth, ...
    for line in lab_asterisk.cli("core show taskprocessors").splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1].isdigit() and parts[2].isdigit() and parts[3].isdigit():
            in_queue = max(in_queue, int(parts[2]))
            high_water = max(high_water, int(parts[3]))  # since Asterisk started
    return {"asterisk_rss_mib": round(rss, 1), "taskprocessor_in_queue_max": in_queue,
            "taskprocessor_max_depth_since_start": high_water}


async def wait_bridges(count: int, timeout: float) -> float:
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        while len(await asyncio.to_thread(ari, "GET", "/bridges") or []) < count:
            await asyncio.sleep(0.25)
    return time.monotonic() - started


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--out", type=Path, default=Path("bench/results/concurrent_calls.json"))
    args = parser.parse_args()
    lab_asterisk.up()
    workdir = Path(tempfile.mkdtemp(prefix="caseline-bench-concurrent-"))
    redis = RedisServer.start()
    config = copy_config(workdir / "config")
    settings = yaml.safe_load((config / "caseline.yaml").read_text())
    settings["calls"]["one_call_per_person"] = False
    (config / "caseline.yaml").write_text(yaml.safe_dump(settings))
    caseline = CaselineProcess(workdir, [], config, extra_env={"CASELINE_REDIS_URL": redis.url})
    phone = sipp.Phone("mgr1", workdir).start()
    result: dict[str, object] = {"calls": args.calls, "rate": args.rate}
    try:
        await caseline.registered()
        async with aiohttp.ClientSession() as http:
            await asyncio.sleep(2)  # region names loaded, steady state
            result["idle"] = {**await caseline_figures(http), **asterisk_figures()}
            hold_ms = int((args.calls / args.rate + 60) * 1000)
            run = await sipp.place_calls(workdir, [VIP] * args.calls, hold_ms=hold_ms,
                                         rate=args.rate, timeout_s=hold_ms // 1000 + 120)
            result["all_bridged_after_s"] = round(await wait_bridges(args.calls, 300), 1)
            result["held"] = {**await caseline_figures(http), **asterisk_figures()}
            idle, held = result["idle"], result["held"]
            result["caseline_bytes_per_call"] = round(
                (held["process_resident_memory_bytes"] - idle["process_resident_memory_bytes"]) / args.calls)
            lab_asterisk.cli("channel request hangup all")
            async with asyncio.timeout(120):
                while await asyncio.to_thread(ari, "GET", "/channels"):
                    await asyncio.sleep(0.25)
            await run.wait(timeout=60)
            await asyncio.sleep(6)  # idle keep-alive connections close after 5 s
            result["after"] = {**await caseline_figures(http), **asterisk_figures()}
            result["bridges_left"] = len(await asyncio.to_thread(ari, "GET", "/bridges") or [])
    finally:
        caseline.stop()
        phone.stop()
        redis.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
