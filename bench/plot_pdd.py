"""Plot post-dial delay against call rate from bench/call_rate.py's printed results.

  .venv/bin/python bench/plot_pdd.py bench/results/call_rate_10-40.txt bench/results/call_rate_60-150.txt
writes bench/results/pdd_vs_rate.png (needs the `bench` extra: matplotlib).
"""
from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

LINE = re.compile(r"^(\w+)\s+([\d.]+)/s\s+calls\s+(\d+)\s+failed\s+([\d.]+) %\s+PDD (\{.*\})$")


def read(paths: list[Path]) -> dict[str, list[tuple[float, float, float, float]]]:
    series: dict[str, dict[float, tuple[float, float, float]]] = defaultdict(dict)
    for path in paths:
        for line in path.read_text().splitlines():
            m = LINE.match(line.strip())
            if m:
                pdd = ast.literal_eval(m.group(5))
                if pdd:
                    series[m.group(1)][float(m.group(2))] = (pdd["p50"], pdd["p99"], float(m.group(4)))
    return {k: sorted((r, *v) for r, v in d.items()) for k, d in series.items()}


def main(argv: list[str]) -> int:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = read([Path(a) for a in argv])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for path, points in series.items():
        rates = [p[0] for p in points]
        ax.plot(rates, [p[1] for p in points], marker="o", label=f"{path} p50")
        ax.plot(rates, [p[2] for p in points], marker="x", linestyle="--", label=f"{path} p99")
    ax.set_xlabel("calls per second (SIPp, 30 s per rate)")
    ax.set_ylabel("post-dial delay, ms (INVITE -> first 180/183/200)")
    ax.set_yscale("log")
    ax.set_title("Asterisk 22 lab, 2 cores: plain Dial vs Caseline (holder, queue)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=3)
    out = Path("bench/results/pdd_vs_rate.png")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
