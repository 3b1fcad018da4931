"""Plot total CPU per call by path from bench/call_rate.py's JSON: one stacked bar per run
(Asterisk, Caseline, Redis, SIPp), so a path's cost beside plain Dial's is seen at a glance.

  .venv/bin/python bench/plot_cpu.py bench/results/ceilings_admission_on.json --phase pdd \
      [--out bench/results/cpu_per_call.png]
needs the `bench` extra (matplotlib). Runs that lost more than 0.1 % of their calls are left
out: their CPU is a collapse's, not a call's. A path measured several times (an ABAB run) is
drawn once, with the mean of its runs.
"""
from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

PARTS = ("asterisk", "caseline", "redis", "sipp")


def per_call_ms(run: dict) -> dict[str, float]:
    """CPU milliseconds per call of each part, from the run's CPU % and rate.

    >>> per_call_ms({"rate": 50, "cpu_pct": {"asterisk": 25.0, "caseline": 10.0, "sipp_op1": 1.0, "sipp_caller": 4.0}})
    {'asterisk': 5.0, 'caseline': 2.0, 'redis': 0.0, 'sipp': 1.0}
    """
    cpu = run["cpu_pct"]
    sipp = sum(v for k, v in cpu.items() if k.startswith("sipp"))
    percent = {"asterisk": cpu.get("asterisk", 0.0), "caseline": cpu.get("caseline", 0.0),
               "redis": cpu.get("redis", 0.0), "sipp": sipp}
    return {part: round(10 * percent[part] / run["rate"], 2) for part in PARTS}


def bars(results: list[dict], phase: str | None = None) -> dict[str, dict[str, float]]:
    """"path at rate" -> mean CPU ms per call of each part, over the runs that held."""
    runs: dict[str, list[dict[str, float]]] = defaultdict(list)
    for run in results:
        if run.get("holds") and "cpu_pct" in run and phase in (None, run.get("phase")):
            runs[f"{run['path']} {run['rate']:g}/s"].append(per_call_ms(run))
    return {label: {part: statistics.fmean(r[part] for r in measured) for part in PARTS}
            for label, measured in runs.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--phase", choices=("ceiling", "pdd"), default=None,
                        help="only the runs of this phase (pdd: every path at one rate)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/cpu_per_call.png"))
    args = parser.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for f in args.results for r in json.loads(f.read_text())["results"]]
    data = bars(results, args.phase)
    labels = list(data)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(labels) + 2), 4.8))
    bottom = [0.0] * len(labels)
    for part in PARTS:
        values = [data[label][part] for label in labels]
        ax.bar(labels, values, bottom=bottom, label=part)
        bottom = [b + v for b, v in zip(bottom, values)]
    for x, total in enumerate(bottom):
        ax.text(x, total, f"{total:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("CPU ms per call (from /proc)")
    ax.set_title("Total CPU per call by path (Asterisk 22 lab, 2 shared cores)")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
