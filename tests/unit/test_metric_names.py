"""Metric names follow Prometheus conventions, checked on a live scrape of the ops API:
Prometheus's own linter (`promtool check metrics`: `_total` on counters only, base units,
snake case, help text) and the `caseline_` prefix (the client library's standard
`process_*` figures keep their usual names, as every Prometheus dashboard expects them)."""
from __future__ import annotations

import asyncio
from asyncio.subprocess import PIPE, STDOUT

from tests.support.prometheus import exercised, families, promtool, sample_names, scrape, series_of

STANDARD_PREFIXES = ("caseline_", "process_")


async def test_promtool_finds_nothing_to_say_about_live_metrics() -> None:
    tool = promtool()
    exposition = await scrape(exercised())
    checked = await asyncio.create_subprocess_exec(tool, "check", "metrics", stdin=PIPE, stdout=PIPE,
                                                   stderr=STDOUT)
    said, _ = await asyncio.wait_for(checked.communicate(exposition.encode()), 60)
    assert checked.returncode == 0 and not said.strip(), f"promtool check metrics:\n{said.decode()}"


async def test_every_metric_has_the_caseline_prefix_or_a_standard_one() -> None:
    found = families(await scrape(exercised()))
    assert {"caseline_calls_total", "caseline_asyncio_tasks", "process_resident_memory_bytes"} <= set(found)
    assert [n for n in found if not n.startswith(STANDARD_PREFIXES)] == []


async def test_every_metric_has_a_sample_so_promtool_checks_it() -> None:
    exposition = await scrape(exercised())
    seen = sample_names(exposition)
    bare = [name for name, kind in families(exposition).items() if not series_of(name, kind) & seen]
    assert bare == [], "give these a sample in tests/support/prometheus.py exercised()"
