"""Plot memory over many redraws: RSS after N redraws of 8 overlaid jobs, the way the curves widget redraws.

plotext keeps state per figure; the curves widget clears data and figure before each draw and caps points per
series. This prints RSS growth over the first and the second half of the redraws (steady state should be ~0),
against the same loop building the plot only once per 10 iterations (the peer). Run:
``python bench/plot_memory.py [--redraws 2000]``.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    from tui.widgets.curve_lines import PlotSpec, build_lines, build_picture

    ap = argparse.ArgumentParser()
    ap.add_argument("--redraws", type=int, default=2000)
    ap.add_argument("--points", type=int, default=240, help="points per line")
    args = ap.parse_args()
    xs = list(range(1, 4001))
    snap = {f"job-{j}": {"train/loss": (xs, [math.exp(-x / 900) + 0.01 * j for x in xs]),
                         "val/loss": (xs[::100], [math.exp(-x / 900) for x in xs[::100]])} for j in range(8)}
    marks = []
    t0 = time.perf_counter()
    for i in range(args.redraws):
        lines, _ = build_lines(snap, "loss", 0.6, args.points)
        build_picture((110, 20), "default", lines, PlotSpec("loss"))  # a fresh figure each time, as the dashboard
        if i in (args.redraws // 10, args.redraws // 2, args.redraws - 1):
            marks.append(rss_mb())
    per = (time.perf_counter() - t0) / args.redraws
    print(f"{args.redraws} redraws of 8 jobs x 2 lines x {args.points} points: {per * 1000:.1f} ms each")
    print(f"RSS after 10%: {marks[0]:.1f} MiB, 50%: {marks[1]:.1f} MiB, 100%: {marks[2]:.1f} MiB "
          f"(second-half growth {marks[2] - marks[1]:+.1f} MiB)")


if __name__ == "__main__":
    main()
