"""docs/grafana-dashboard.json asks only for metrics Caseline exports.

Every PromQL query (panels and template variables) is parsed by Prometheus's own parser
(`promtool check rules` on the queries as recording rules) and the metric names in it are
looked up in a live scrape of the ops API: a renamed or misspelt metric is an empty panel
in Grafana, and nobody notices until they need it.
"""
from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.support.prometheus import exercised, families, promtool, scrape

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
# what the issue asks the dashboard to show (issue 20, "Ops conventions")
MUST_SHOW = {"caseline_calls_total", "caseline_decision_seconds", "caseline_fallbacks_total",
             "caseline_crm_seconds", "caseline_crm_errors_total", "caseline_calls_shed_total"}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan"}
_GRAFANA_VAR = re.compile(r"\$__rate_interval|\$__interval|\$__range")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.:])[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.+?)\s*,\s*\w+\s*\)\s*$")


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and query variable, Grafana's range variables
    replaced by a duration (they are not PromQL)."""
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", _GRAFANA_VAR.sub("5m", target["expr"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            text = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            inner = _LABEL_VALUES.match(text)
            yield f"variable {variable['name']!r}", inner.group(1) if inner else text


def metric_names(expr: str) -> set[str]:
    """The metric names a query selects: words that are not functions, keywords, labels
    (matchers, grouping), durations or numbers."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = _GROUPING.sub("", text)
    return {m.group() for m in _NAME.finditer(text)
            if m.group() not in KEYWORDS and not text[m.end():].lstrip().startswith("(")}


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def test_the_extractor_reads_promql() -> None:
    assert metric_names('histogram_quantile(0.95, sum by (le) (rate(a_bucket{x=~"$i",le!="1"}[5m])))') == {"a_bucket"}
    assert metric_names("sum(rate(a_total[5m])) / clamp_min(sum(b_count offset 1h), 1e-9) and on(instance) c") \
        == {"a_total", "b_count", "c"}


async def test_every_query_names_a_metric_caseline_exports() -> None:
    exported = families(await scrape(exercised()))
    used: set[str] = set()
    missing = []
    for where, expr in queries(load()):
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        for name in names:
            base = next((name.removesuffix(s) for s in HISTOGRAM_SERIES
                         if name.endswith(s) and exported.get(name.removesuffix(s)) == "histogram"), name)
            used.add(base)
            if base not in exported:
                missing.append(f"{where}: {name}")
    assert missing == [], "not on /metrics (renamed? see ari_app/ops/metrics.py)"
    assert MUST_SHOW - used == set(), "the dashboard does not show these"


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    tool = promtool()
    rules = [{"record": f"dashboard:query{i}", "expr": expr} for i, (_, expr) in enumerate(queries(load()))]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    checked = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, timeout=60, check=False)
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode(errors="replace")


def test_panels_are_laid_out_and_use_the_datasource_variable() -> None:
    dashboard = load()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
