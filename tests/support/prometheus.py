"""/metrics as Prometheus sees it: scraped over HTTP from the real ops API in-process, and
Debian's promtool to lint it.

promtool comes from Debian's `prometheus` package; scripts/setup-env extracts only the
binary into the lab's cache (installing the package would start a Prometheus server).
`CASELINE_PROMTOOL`, else PATH, else that cache.
Without it a test skips locally and FAILS in CI (CI=true), like every test that needs a
real part (tests/conftest.py `need`).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import aiohttp
import pytest
from labkit.paths import LAB_HOME

from ari_app.ops.api import OpsServer, create_app
from ari_app.ops.metrics import Metrics

IN_CI = os.environ.get("CI", "").lower() == "true"
PROMTOOL_CACHE = LAB_HOME / "tools" / "promtool"  # where scripts/setup-env puts it
TOKEN = "metrics-test-token"
_TYPE_RE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)
_SAMPLE_RE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]", re.MULTILINE)


def promtool() -> Path:
    found = os.environ.get("CASELINE_PROMTOOL") or shutil.which("promtool")
    path = Path(found) if found else PROMTOOL_CACHE
    if not os.access(path, os.X_OK):
        message = (f"promtool unavailable: {path} is not executable "
                   f"(scripts/setup-env puts it at {PROMTOOL_CACHE})")
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def exercised() -> Metrics:
    """A Metrics as `caseline run` has it, with every metric given a sample: promtool lints
    only families that have one (tests check that none is left without)."""
    metrics = Metrics()
    metrics.watch_process()
    metrics.call("repeat", "sales", "answered")
    metrics.decision(0.004)
    metrics.crm(0.12)
    metrics.crm(0.3, error_status="timeout")
    metrics.fallback("busy")
    metrics.ari_reconnects.inc()
    metrics.live_calls.set(2)
    metrics.agi_session("ok")
    metrics.redis_writes_dropped.inc()
    metrics.redis_writes_refused.inc()
    metrics.learning_bad_events.inc()
    return metrics


async def scrape(metrics: Metrics) -> str:
    """GET /metrics from the ops API serving `metrics`, with the token, as Prometheus does."""
    app = create_app(token=TOKEN, metrics=metrics, checks={}, reload=_nothing, live_calls=list,
                     invalidate=_nothing)
    async with (OpsServer(app, port=0) as server, aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{server.port}/metrics",
                         headers={"Authorization": f"Bearer {TOKEN}"}) as answer):
        assert answer.status == 200, await answer.text()
        return await answer.text()


async def _nothing(*_: object) -> None:
    return None


def families(exposition: str) -> dict[str, str]:
    """{family name: type} from the `# TYPE` lines."""
    return dict(_TYPE_RE.findall(exposition))


def sample_names(exposition: str) -> set[str]:
    return set(_SAMPLE_RE.findall(exposition))


def series_of(name: str, kind: str) -> set[str]:
    """The sample names a family of this type writes (a histogram's buckets, sum and count)."""
    if kind in ("histogram", "summary", "gaugehistogram"):
        return {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return {name}
