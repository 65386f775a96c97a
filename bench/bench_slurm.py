"""Submit -> first metric row: the Slurm backend (a local single-node Slurm) against the local backend, same run.

Each trial starts one demo job on each backend, in alternating order, and times from the call to
``supervisor.start_job`` until ``metrics.jsonl`` holds its first train row; it also times stop and kill under Slurm.
The ratio is Slurm's price for one machine: sbatch, the scheduler's pass, slurmd starting the batch script, srun
starting the step. Needs the Slurm of .ci/slurm-up.sh (run that first, as root).
Run: .venv/bin/python bench/bench_slurm.py [--trials 5]
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

CFG = {"epochs": 1, "steps_per_epoch": 10**6, "step_sleep": 0.001}


def count_rows(path: Path) -> int:
    try:
        return path.read_bytes().count(b'"split":"train"')
    except FileNotFoundError:
        return 0


def wait(pred, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError
        time.sleep(0.005)


def first_row(ws: Workspace, backend: str) -> tuple[str, float]:
    t0 = time.perf_counter()
    rec, _ = sv.start_job(ws, "demo", CFG, backend=backend)
    wait(lambda: count_rows(ws.run(rec.id).metrics) > 0)
    return rec.id, time.perf_counter() - t0


def stats(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.2f}s  (min {min(xs):.2f}, max {max(xs):.2f}, n={len(xs)})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    if subprocess.run(["bash", str(Path(__file__).parents[1] / ".ci" / "slurm-up.sh"), "--check"]).returncode:
        sys.exit("no Slurm here: run .ci/slurm-up.sh (as root) first")
    ws = Workspace(Path(tempfile.mkdtemp())).ensure()
    local, slurm, stops, kills = [], [], [], []
    for i in range(args.trials):
        for backend in (("local", "slurm") if i % 2 == 0 else ("slurm", "local")):
            jid, dt = first_row(ws, backend)
            (local if backend == "local" else slurm).append(dt)
            t0 = time.perf_counter()
            if backend == "slurm" and i % 2 == 0:
                sv.stop(ws, jid, wait=True)
                stops.append(time.perf_counter() - t0)
            elif backend == "slurm":
                sv.kill(ws, jid)
                kills.append(time.perf_counter() - t0)
            else:
                sv.kill(ws, jid)
    print(f"submit -> first metric row, local backend: {stats(local)}")
    print(f"submit -> first metric row, Slurm backend: {stats(slurm)}")
    print(f"ratio Slurm / local (medians): {statistics.median(slurm) / statistics.median(local):.2f}x")
    if stops:
        print(f"Slurm stop (latest.pt saved, job gone from squeue): {stats(stops)}")
    if kills:
        print(f"Slurm kill (scancel, job gone from squeue): {stats(kills)}")


if __name__ == "__main__":
    main()
