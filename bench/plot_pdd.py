"""Plot post-dial delay against call rate from bench/call_rate.py's JSON.

  .venv/bin/python bench/plot_pdd.py bench/results/call_rate.json [more.json ...]
writes bench/results/pdd_vs_rate.png (needs the `bench` extra: matplotlib). Every run of
both phases is a point; a run that lost more than 0.1 % of its calls is drawn hollow.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

LABELS = {"plain": "(a) plain Dial", "holder": "(b) ARI, to the holder",
          "agi": "(b) FastAGI + Dial", "queue": "(c) ARI, to the queue",
          "agiq": "(c) FastAGI + Queue", "plainq": "plain Queue (control for c)",
          "crm0": "(b) ARI, HTTP CRM 0 ms", "crm50": "(b) ARI, HTTP CRM 50 ms"}


def series(results: list[dict]) -> dict[str, list[tuple[float, float, float, bool]]]:
    """path -> [(rate, p50, p99, held)], one point per rate (the later run wins)."""
    points: dict[str, dict[float, tuple[float, float, bool]]] = defaultdict(dict)
    for r in results:
        pdd = r.get("pdd_ms") or {}
        if "p50" in pdd:
            points[r["path"]][r["rate"]] = (pdd["p50"], pdd["p99"], r["holds"])
    return {p: sorted((rate, *v) for rate, v in d.items()) for p, d in points.items()}


def main(argv: list[str]) -> int:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = [json.loads(Path(a).read_text()) for a in argv or ["bench/results/call_rate.json"]]
    results = [r for data in files for r in data["results"]]
    seconds = files[0]["machine"]["seconds_per_rate"]
    fig, (ax50, ax99) = plt.subplots(1, 2, figsize=(12, 4.8), sharex=True)
    for path, points in series(results).items():
        rates = [p[0] for p in points]
        for ax, column in ((ax50, 1), (ax99, 2)):
            line, = ax.plot(rates, [p[column] for p in points], marker="o", label=LABELS.get(path, path))
            lost = [p for p in points if not p[3]]
            ax.scatter([p[0] for p in lost], [p[column] for p in lost], s=90,
                       facecolors="white", edgecolors=line.get_color(), zorder=3)
    for ax, what in ((ax50, "p50"), (ax99, "p99")):
        ax.set_xlabel(f"calls per second (SIPp, {seconds:g} s per rate)")
        ax.set_ylabel(f"post-dial delay {what}, ms (on the wire)")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    ax50.legend(fontsize=7)
    fig.suptitle("Asterisk 22 lab, 2 shared cores: INVITE -> first 180/183/200 against call rate "
                 "(hollow: more than 0.1 % of calls lost)")
    out = Path("bench/results/pdd_vs_rate.png")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
