"""The benchmark runners still run: each bench in --smoke mode (a few seconds), JSON checked.

Benchmarks are not pass/fail on speed; this only keeps bench/ from rotting when the app's
wiring changes. Each runs as its own process, as a person would run it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
from bench.report import COMMON_KEYS, STAT_KEYS  # noqa: E402

# Warnings are errors in the benches too.
WARNINGS = ["-W", "error"]


def run_bench(name: str, tmp_path: Path) -> dict:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail("CI needs redis-server for the bench smoke runs", pytrace=False)
        pytest.skip("redis-server is not installed")
    out = tmp_path / f"{name}.json"
    proc = subprocess.run([sys.executable, *WARNINGS, str(ROOT / "bench" / f"{name}.py"), "--smoke",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    data = json.loads(out.read_text())
    for key in COMMON_KEYS:
        assert key in data, key
    assert data["bench"] == name and data["smoke"] is True
    assert data["machine"]["cpus"] and data["machine"]["python"] and data["machine"]["redis_server"]
    assert "stalls_over_50us_per_s" in data["noise"]["stalls_start"]
    assert "verdict" in data["results"]
    return data["results"]


def has_stats(stats: dict) -> None:
    for key in STAT_KEYS:
        assert key in stats, key
    assert stats["n"] > 0 and 0 < stats["p50_us"] <= stats["p99_us"] <= stats["max_us"]


def test_inprocess(tmp_path: Path) -> None:
    r = run_bench("inprocess", tmp_path)
    for case in ("known", "new", "known_x10", "new_x10"):
        has_stats(r["route"][case])
        assert r["route"][case]["cpu_per_call_us"] > 0
    has_stats(r["decide"]["all"])
    assert r["decide"]["by_rule"]
    assert set(r["mix"]["known_classes"]) >= {"callback", "repeat", "old"}
    assert r["degraded_history_in_sample"] == 0
    assert r["mix"]["with_region_name"] == r["mix"]["profiles"]  # region names were loaded
    assert set(r["verdict"]) == {"route_p99_known_under_1ms", "route_p99_new_under_1ms",
                                 "decide_p99_under_50us", "decide_p90_under_50us",
                                 "decide_slowest_profile_median_under_50us", "cpu_per_route_under_1ms"}
    assert r["decide"]["all"]["per_profile_median_max_us"] > 0
    assert set(r["gc_during_routes"]) == {"gen0", "gen1", "gen2"}


def test_history(tmp_path: Path) -> None:
    r = run_bench("history_10m", tmp_path)
    fill = r["fill"]
    assert fill["contacts"] == 20_000 and fill["numbers"] > 1000 and fill["keys"] == fill["numbers"]
    for key in ("fill_s", "redis_used_memory_mb", "bytes_per_contact", "zset_encodings_sampled"):
        assert key in fill, key
    has_stats(r["recent"]["stored_numbers"])
    has_stats(r["recent"]["absent_numbers"])
    assert r["recent"]["by_contacts_returned"]
    assert "recent_p99_under_1ms" in r["verdict"]


def test_cpu_per_call(tmp_path: Path) -> None:
    r = run_bench("cpu_per_call", tmp_path)
    for case in ("known", "new"):
        assert r["route_only"][case]["cpu_per_call_us"] > 0
    for case in r["whole_calls"].values():
        assert sum(case["outcomes"].values()) == case["calls"]  # every call finished
        assert case["cpu_per_call_us"] > 0 and case["ari_requests_per_call"] > 0
        has_stats(case["identify_decide_in_app"])
    assert set(r["verdict"]) == {"route_cpu_under_1ms", "whole_call_cpu_under_1ms"}


def test_memory_per_call(tmp_path: Path) -> None:
    r = run_bench("memory_per_call", tmp_path)
    minimal, bridged = r["minimal"]["50"], r["bridged"]["50"]
    assert minimal["calls"] == 50 and minimal["tracemalloc_kb_per_call"] > 0
    assert "rss_delta_kb_per_call" in minimal and minimal["top_allocation_files_second_pass"]
    assert bridged["held_in_bridges"] == 50 and bridged["held_in_bridges_second_pass"] == 50
    assert bridged["live_calls_seen_by_app"] == 50 and bridged["live_calls_second_pass"] == 50
    assert bridged["outcomes_second_pass"] == {"answered": 50}
    assert bridged["tracemalloc_kb_per_call"] > 0
