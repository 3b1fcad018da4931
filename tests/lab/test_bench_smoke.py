"""The call-rate benchmark's runner in smoke mode (seconds), so it cannot rot unnoticed.

Speed is not asserted here: figures belong to bench/ and docs/benchmarks.md.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from tests.support.lab import PROJECT

pytestmark = pytest.mark.lab


@pytest.mark.timeout(180)
async def test_call_rate_runner_smoke(asterisk, tmp_path):
    out = tmp_path / "call_rate.json"
    done = await asyncio.to_thread(subprocess.run, [
        sys.executable, "bench/call_rate.py", "--smoke", "--out", str(out)],
        cwd=PROJECT, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert [r["path"] for r in results] == ["plain", "holder", "queue", "agi", "crm0", "crm50"]
    for r in results:
        assert r["successful"] == r["calls"] and r["failed"] == 0, r
        assert r["pdd_ms"]["n"] == r["calls"] and r["capture"]["dropped"] == 0, r
        assert r["cpu_pct"]["asterisk"] > 0, r
    table = await asyncio.to_thread(subprocess.run, [
        sys.executable, "bench/call_rate_table.py", str(out)],
        cwd=PROJECT, capture_output=True, text=True, timeout=30, check=True)
    assert "| plain | 5 (0.00 %) | 5 | above 5 |" in table.stdout, table.stdout
