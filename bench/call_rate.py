"""Call rate and post-dial delay through the real lab: plain dialplan vs Caseline.

Three paths, SIPp callers, short calls, no RTP:
  (a) plain  : dialplan Dial() to a SIPp phone (service 9300, bench/asterisk/bench.conf)
  (b) holder : Caseline routes an A client to their manager's phone (mgr1)
  (c) queue  : Caseline routes a new caller into the operators' queue
For each path and each rate in --rates, SIPp places calls for --seconds; a rate "holds"
when at most 0.1 % of calls fail. Post-dial delay (PDD) is INVITE -> first 180/183/200,
from SIPp's own response-time trace. Results: JSON in --out, a table on stdout.

  .venv/bin/python bench/call_rate.py --out bench/results/call_rate.json
  .venv/bin/python bench/call_rate.py --smoke      # seconds: the runner cannot rot
Needs the lab (`scripts/lab up`) and nobody else using it.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from labkit import asterisk as lab_asterisk  # noqa: E402
from labkit import paths as lab_paths  # noqa: E402
from labkit import scenarios, sipp  # noqa: E402
from labkit.caseline_process import CaselineProcess  # noqa: E402
from labkit.config_copy import copy_config  # noqa: E402
from labkit.redis_server import RedisServer  # noqa: E402

PATHS = {"plain": ("9300", "+79161234567"), "holder": ("100", "+79161234567"),
         "queue": ("100", "+79057778899")}



async def run_rate(workdir: Path, path: str, rate: float, seconds: float) -> dict:
    service, number = PATHS[path]
    calls = max(1, int(rate * seconds))
    name = f"{path}-{rate:g}"
    (workdir / f"{name}.xml").write_text(scenarios.bench_caller())
    (workdir / f"{name}.csv").write_text("SEQUENTIAL\n" + f"{number};\n" * calls)
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        "sipp", sipp.ASTERISK, "-sf", f"{name}.xml", "-inf", f"{name}.csv", "-s", service,
        "-i", sipp.CALLER_IP, "-p", str(sipp.free_udp_port(sipp.CALLER_IP)), "-m", str(calls),
        "-r", f"{rate:g}", "-rp", "1000", "-l", "5000", "-timer_resol", "1", "-nostdin", "-timeout", f"{seconds + 60:.0f}s",
        "-trace_stat", "-stf", f"{name}.stat.csv", "-trace_rtt", "-rtt_freq", "1",
        "-trace_err", "-error_file", f"{name}.errors", "-max_socket", "5000",
        cwd=workdir, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    await process.wait()
    elapsed = time.monotonic() - started
    stats = read_stats(workdir / f"{name}.stat.csv")
    pdd = read_rtt(workdir)
    for f in workdir.glob("*_rtt.csv"):
        f.rename(workdir / f"{name}.rtt.done")
    ok, failed = stats.get("SuccessfulCall(C)", 0), stats.get("FailedCall(C)", 0)
    return {"path": path, "rate": rate, "calls": calls, "successful": ok, "failed": failed,
            "failed_pct": 100.0 * failed / max(1, ok + failed), "elapsed_s": round(elapsed, 1),
            "pdd_ms": summary(pdd)}


def read_stats(path: Path) -> dict[str, int]:
    lines = path.read_text().splitlines() if path.exists() else []
    if len(lines) < 2:
        return {}
    header, last = lines[0].split(";"), lines[-1].split(";")
    out = {}
    for key, value in zip(header, last):
        if key in ("SuccessfulCall(C)", "FailedCall(C)"):
            out[key] = int(value or 0)
    return out


def read_rtt(workdir: Path) -> list[float]:
    values = []
    for f in workdir.glob("*_rtt.csv"):
        for line in f.read_text().splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 3:
                try:
                    values.append(float(parts[1]))
                except ValueError:
                    pass
    return values


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"n": len(values), "p50": round(pick(0.5), 2), "p99": round(pick(0.99), 2),
            "max": round(values[-1], 2), "mean": round(statistics.fmean(values), 2)}


BENCH_FILES = ("bench.conf", "queues_bench.conf")


def install_bench_dialplan() -> None:
    for name in BENCH_FILES:
        shutil.copy(Path(__file__).with_name("asterisk") / name, lab_paths.ROOT / "etc/asterisk" / name)
    lab_asterisk.cli("dialplan reload")
    lab_asterisk.cli("module reload app_queue.so")


def remove_bench_dialplan() -> None:
    for name in BENCH_FILES:
        (lab_paths.ROOT / "etc/asterisk" / name).unlink(missing_ok=True)
    lab_asterisk.cli("dialplan reload")
    lab_asterisk.cli("module reload app_queue.so")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="10,20,40,60,80")
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--paths", default="plain,holder,queue")
    parser.add_argument("--out", type=Path, default=Path("bench/results/call_rate.json"))
    parser.add_argument("--smoke", action="store_true", help="2 s at 5 calls/s per path")
    args = parser.parse_args()
    rates = [5.0] if args.smoke else [float(r) for r in args.rates.split(",")]
    seconds = 2.0 if args.smoke else args.seconds
    lab_asterisk.up()
    install_bench_dialplan()
    workdir = Path(tempfile.mkdtemp(prefix="caseline-bench-"))
    redis = RedisServer.start()
    # The bench measures routing cost: overlapping calls of one client must not turn the
    # manager "busy", and the queue's only member (a SIPp phone) takes every call.
    config = copy_config(workdir / "config", queues__operators__asterisk_queue="benchq")
    settings = yaml.safe_load((config / "caseline.yaml").read_text())
    settings["calls"]["one_call_per_person"] = False
    (config / "caseline.yaml").write_text(yaml.safe_dump(settings))
    caseline = CaselineProcess(workdir, [], config, extra_env={"CASELINE_REDIS_URL": redis.url})
    phones = [sipp.Phone(name, workdir).start() for name in ("mgr1", "op1", "op2", "sup1")]
    results = []
    try:
        await caseline.registered()
        for path in args.paths.split(","):
            for rate in rates:
                result = await run_rate(workdir, path, rate, seconds)
                results.append(result)
                print(f"{path:7} {rate:6.0f}/s  calls {result['calls']:6}  failed "
                      f"{result['failed_pct']:6.2f} %  PDD {result['pdd_ms']}", flush=True)
                lab_asterisk.cli("channel request hangup all")
    finally:
        caseline.stop()
        for phone in phones:
            phone.stop()
        redis.stop()
        remove_bench_dialplan()
    machine = {"asterisk": lab_asterisk.cli("core show version").strip()[:60],
               "seconds_per_rate": seconds}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "results": results}, indent=1))
    print(f"results: {args.out} (SIPp traces: {workdir})")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
