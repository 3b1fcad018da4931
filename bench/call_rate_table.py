"""Markdown tables from bench/call_rate.py's JSON files (docs/benchmarks.md quotes them).

  .venv/bin/python bench/call_rate_table.py bench/results/call_rate.json [more.json ...]

CPU per call is each process's CPU seconds over the run divided by the calls placed:
what one call costs Asterisk, Caseline, Redis and SIPp on this machine, idle work included
(so it reads higher at low rates). Runs stopped early show none.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ORDER = ("plain", "holder", "agi", "queue", "agiq", "plainq", "crm0", "crm50")


def load(paths: list[Path]) -> list[dict]:
    runs = []
    for path in paths:
        data = json.loads(path.read_text())
        runs += [dict(r, source=path.name) for r in data["results"] if "pdd_ms" in r]
    return runs


def cpu_ms_per_call(run: dict) -> dict[str, float]:
    wall = run["elapsed_s"]
    per = {k: v / 100 * wall / run["calls"] * 1000 for k, v in run["cpu_pct"].items()}
    sipp = sum(v for k, v in per.items() if k.startswith("sipp"))
    return {"asterisk": per.get("asterisk", 0.0), "caseline": per.get("caseline", 0.0),
            "redis": per.get("redis", 0.0), "sipp": sipp}


def ceilings(runs: list[dict]) -> str:
    lines = ["| path | rates tried (calls/s, failed %) | holds | fails at |", "|---|---|---:|---:|"]
    for path in ORDER:
        tried = sorted((r for r in runs if r["path"] == path and r.get("phase") == "ceiling"),
                       key=lambda r: r["rate"])
        if not tried:
            continue
        held = [r["rate"] for r in tried if r["holds"]]
        failed = [r["rate"] for r in tried if not r["holds"]]
        cells = ", ".join(f"{r['rate']:g} ({r['failed_pct']:.2f} %{', stopped early' if r.get('aborted_early') else ''})"
                          for r in tried)
        holds = f"{max(held):g}" if held else f"below {tried[0]['rate']:g}"
        fails = f"{min(failed):g}" if failed else f"above {tried[-1]['rate']:g}"
        lines.append(f"| {path} | {cells} | {holds} | {fails} |")
    return "\n".join(lines)


def runs_table(runs: list[dict]) -> str:
    lines = ["| path | calls/s | phase | failed % | PDD p50 / p90 / p99 ms | CPU ms per call: Asterisk / Caseline / Redis / SIPp | Asterisk queues backing up (most waiting) |",
             "|---|---:|---|---:|---|---|---|"]
    for run in sorted(runs, key=lambda r: (ORDER.index(r["path"]), r["rate"], r.get("phase", ""))):
        pdd = run["pdd_ms"]
        cpu = ("{asterisk:.2f} / {caseline:.2f} / {redis:.2f} / {sipp:.2f}".format(**cpu_ms_per_call(run))
               if not run.get("aborted_early") else "- (stopped early)")
        queues = ", ".join(f"{k} {v}" for k, v in (run.get("taskprocessors_most_queued") or {}).items()) or "-"
        lines.append(f"| {run['path']} | {run['rate']:g} | {run.get('phase', '')} | {run['failed_pct']:.2f} | "
                     f"{pdd.get('p50', '-')} / {pdd.get('p90', '-')} / {pdd.get('p99', '-')} | "
                     f"{cpu} | {queues} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    runs = load([Path(a) for a in argv] or [Path("bench/results/call_rate.json")])
    print(ceilings(runs))
    print()
    print(runs_table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
