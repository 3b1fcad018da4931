"""Shared helpers for the benchmarks: paths, percentiles, machine facts, JSON out, tables.

Every bench script starts with

    if __package__ in (None, ""):          # `python bench/x.py` as well as `python -m bench.x`
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench import report
    report.setup_paths()                   # the repository and its scripts/ (labkit)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SMOKE_RESULTS = RESULTS / "smoke"  # git-ignored (bench/.gitignore)

# The keys every result file has (tests/unit/test_bench_smoke.py checks them).
COMMON_KEYS = ("bench", "smoke", "started_at", "duration_s", "argv", "machine", "params", "results", "noise")
STAT_KEYS = ("n", "mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us")


def setup_paths() -> None:
    """Make `ari_app` and `labkit` importable however the script was started."""
    for path in (ROOT / "scripts", ROOT):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


# --- statistics ---------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (p in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize_ns(samples_ns: Iterable[int]) -> dict[str, float]:
    """n, mean and p50/p90/p99/p99.9/max in microseconds (nearest rank, no interpolation)."""
    values = sorted(samples_ns)
    if not values:
        return {k: 0 for k in STAT_KEYS}
    us = [v / 1000 for v in values]
    return {
        "n": len(us),
        "mean_us": round(sum(us) / len(us), 2),
        "p50_us": round(percentile(us, 50), 2),
        "p90_us": round(percentile(us, 90), 2),
        "p99_us": round(percentile(us, 99), 2),
        "p999_us": round(percentile(us, 99.9), 2),
        "max_us": round(us[-1], 2),
    }


# --- machine ------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _redis_server_version() -> str | None:
    exe = shutil.which("redis-server")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for part in out.split():
        if part.startswith("v="):
            return part[2:]
    return out.strip() or None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git() -> dict[str, Any]:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ari_app", "agi"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "app_code_modified": None}
    return {"commit": head or None, "app_code_modified": bool(dirty)}


def machine_info() -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "ram_gb": _mem_total_gb(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "redis_server": _redis_server_version(),
        "packages": {name: _version(name) for name in
                     ("redis", "hiredis", "aiohttp", "phonenumbers", "pydantic")},
        "git": _git(),
    }


# --- process memory ------------------------------------------------------------------------


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# --- command line and output ----------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes (a few seconds): checks the runner works, figures mean nothing")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON result file (default bench/results/<name>.json, "
                        "bench/results/smoke/<name>.json with --smoke)")
    p.add_argument("--seed", type=int, default=20240601, help="random seed (data is reproducible)")
    return p


def default_out(name: str, smoke: bool) -> Path:
    return (SMOKE_RESULTS if smoke else RESULTS) / f"{name}.json"


def _fixed_work() -> int:
    s = 0
    for i in range(600):
        s += i * i
    return s


def noise_probe(iterations: int = 5000) -> dict[str, float]:
    """Timing of a fixed pure-Python workload (~20 µs): how much the machine itself adds to
    tails. On a quiet machine p99/p50 is close to 1; other processes on the same cores
    (or a busy hypervisor) show up here first."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(iterations):
        start = clock()
        _fixed_work()
        samples.append(clock() - start)
    stats = summarize_ns(samples)
    return {k: stats[k] for k in ("p50_us", "p99_us", "p999_us", "max_us")}


def stall_probe(seconds: float = 1.0, gap_ns: int = 50_000) -> dict[str, float]:
    """A bare loop reading the clock: how often, and for how long, this process is stopped
    (scheduler, other processes on the same cores, the hypervisor). Every operation
    timed on this machine has the same chance of containing one of these stalls."""
    clock = time.perf_counter_ns
    end = clock() + int(seconds * 1e9)
    last = clock()
    gaps: list[int] = []
    while True:
        now = clock()
        if now - last > gap_ns:
            gaps.append(now - last)
        last = now
        if now > end:
            break
    gaps.sort()
    return {"stalls_over_50us_per_s": round(len(gaps) / seconds, 1),
            "stall_p50_us": round(percentile(gaps, 50) / 1000, 1) if gaps else 0.0,
            "stall_max_us": round(gaps[-1] / 1000, 1) if gaps else 0.0}


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


class Run:
    """One bench run: collects params and results, writes the JSON file at the end."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name = name
        self.args = args
        self.started = time.monotonic()
        self.data: dict[str, Any] = {
            "bench": name,
            "smoke": bool(args.smoke),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "duration_s": None,
            "argv": sys.argv[1:],
            "machine": machine_info(),
            "params": {},
            "results": {},
            "noise": {"loadavg_start": _load(), "probe_start": noise_probe(1000 if args.smoke else 5000),
                      "stalls_start": stall_probe(0.2 if args.smoke else 1.0)},
        }

    @property
    def params(self) -> dict[str, Any]:
        return self.data["params"]

    @property
    def results(self) -> dict[str, Any]:
        return self.data["results"]

    def write(self) -> Path:
        self.data["duration_s"] = round(time.monotonic() - self.started, 1)
        self.data["noise"]["loadavg_end"] = _load()
        self.data["noise"]["probe_end"] = noise_probe(1000 if self.args.smoke else 5000)
        self.data["noise"]["stalls_end"] = stall_probe(0.2 if self.args.smoke else 1.0)
        n = self.data["noise"]
        print(f"machine noise (fixed ~20 µs work): p50 {n['probe_start']['p50_us']} / p99 "
              f"{n['probe_start']['p99_us']} µs at start, p50 {n['probe_end']['p50_us']} / p99 "
              f"{n['probe_end']['p99_us']} µs at end; load average {n['loadavg_start']} -> {n['loadavg_end']}; "
              f"stalls > 50 µs: {n['stalls_start']['stalls_over_50us_per_s']}/s (median {n['stalls_start']['stall_p50_us']} µs) "
              f"at start, {n['stalls_end']['stalls_over_50us_per_s']}/s at end")
        path = self.args.out or default_out(self.name, self.args.smoke)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")
        print(f"\nwrote {path} ({self.data['duration_s']} s)")
        return path


def print_table(title: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    rows = [[_cell(c) for c in row] for row in rows]
    header = list(header)
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(str(h).rjust(w) if i else str(h).ljust(w) for i, (h, w) in enumerate(zip(header, widths))))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))


def stat_row(label: str, s: dict[str, float]) -> list[object]:
    return [label, s["n"], s["p50_us"], s["p90_us"], s["p99_us"], s["p999_us"], s["max_us"], s["mean_us"]]


STAT_HEADER = ("case", "n", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs", "mean µs")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """with timer() as t: ...; t["wall_s"], t["cpu_s"] (process CPU, all threads) = user_s + sys_s."""
    box: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    try:
        yield box
    finally:
        box["wall_s"] = time.perf_counter() - wall
        box["cpu_s"] = time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_SELF)
        box["user_s"] = after.ru_utime - usage.ru_utime
        box["sys_s"] = after.ru_stime - usage.ru_stime
        box["ctx_switches"] = (after.ru_nvcsw - usage.ru_nvcsw) + (after.ru_nivcsw - usage.ru_nivcsw)
