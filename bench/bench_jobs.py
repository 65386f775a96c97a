"""Job-control latencies with real processes: stop latency, resume overhead, start-to-first-step.

The peer measured in the same run is the floor any Python training process pays: `python -c "import torch"`.
Run: .venv/bin/python bench/bench_jobs.py [--trials 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.paths import Workspace  # noqa: E402
from jobs import supervisor as sv  # noqa: E402


def count_rows(path: Path) -> int:
    try:
        return path.read_bytes().count(b'"split":"train"')
    except FileNotFoundError:
        return 0


def wait(pred, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError
        time.sleep(0.002)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    floor = []
    for _ in range(args.trials):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        floor.append(time.perf_counter() - t0)
    ws = Workspace(Path(tempfile.mkdtemp())).ensure()
    first, stops, resumes = [], [], []
    for _ in range(args.trials):
        t0 = time.perf_counter()
        rec, _ = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 10**6, "step_sleep": 0.001})
        run = ws.run(rec.id)
        wait(lambda: count_rows(run.metrics) > 0)
        first.append(time.perf_counter() - t0)
        time.sleep(0.3)
        t0 = time.perf_counter()
        sv.stop(ws, rec.id, wait=True)
        stops.append(time.perf_counter() - t0)
        n = count_rows(run.metrics)
        t0 = time.perf_counter()
        sv.resume(ws, rec.id)
        wait(lambda: count_rows(run.metrics) > n)
        resumes.append(time.perf_counter() - t0)
        sv.kill(ws, rec.id, grace=1)
    med = statistics.median
    print(f"python -c 'import torch' (floor): {med(floor):.3f} s")
    print(f"start -> first metric row:        {med(first):.3f} s  ({med(first) / med(floor):.2f}x floor)")
    print(f"stop (SIGTERM -> checkpointed exit): {med(stops) * 1000:.0f} ms")
    print(f"resume -> first new metric row:   {med(resumes):.3f} s  ({med(resumes) / med(floor):.2f}x floor)")


if __name__ == "__main__":
    main()
