"""Submit -> first metric row: the Slurm backend (a local single-node Slurm) against two peers, same run.

Each trial, in rotating order, times from the call until the first sign of work:
- ``slurm``: ``supervisor.start_job(backend="slurm")`` of a demo job until ``metrics.jsonl`` holds a train row;
- ``local``: the same job on the local backend (a detached process here);
- ``bare sbatch``: ``sbatch --wrap 'srun python -c "import torch; ..."'`` until its file appears: Slurm's own price
  (sbatch, the scheduler's pass, slurmd starting the batch script, srun starting the step, importing torch) with
  nothing of ncanvas's (the record, the held submission and release, the trainer's set-up and first step).
It also times stop (latest.pt saved, gone from squeue) and kill under Slurm. Needs the Slurm of .ci/slurm-up.sh
(run that first, as root). Run: .venv/bin/python bench/bench_slurm.py [--trials 5]
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


def count(path: Path, needle: bytes) -> int:
    try:
        return path.read_bytes().count(needle)
    except FileNotFoundError:
        return 0


def wait(pred, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError
        time.sleep(0.005)


def bare_sbatch(tmp: Path, i: int) -> float:
    """Seconds from ``sbatch`` to the first line a plain batch job writes after importing torch."""
    done = tmp / f"bare-{i}.txt"
    code = f"import torch; open({str(done)!r}, 'w').write('x')"
    t0 = time.perf_counter()
    out = subprocess.run(["sbatch", "--parsable", f"--output={tmp / f'bare-{i}.log'}",
                          f"--wrap=srun {sys.executable} -c \"{code}\""], capture_output=True, text=True, check=True)
    wait(done.exists)
    dt = time.perf_counter() - t0
    subprocess.run(["scancel", out.stdout.strip().split(";")[0]], capture_output=True)
    return dt


def first_row(ws: Workspace, backend: str) -> tuple[str, float, float]:
    """(job id, seconds to the trainer's ``started`` event, seconds to the first train row)."""
    t0 = time.perf_counter()
    rec, _ = sv.start_job(ws, "demo", CFG, backend=backend)
    metrics = ws.run(rec.id).metrics
    wait(lambda: count(metrics, b'"event":"started"') > 0)
    up = time.perf_counter() - t0
    wait(lambda: count(metrics, b'"split":"train"') > 0)
    return rec.id, up, time.perf_counter() - t0


def stats(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.2f}s  (min {min(xs):.2f}, max {max(xs):.2f}, n={len(xs)})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    if subprocess.run(["bash", str(Path(__file__).parents[1] / ".ci" / "slurm-up.sh"), "--check"]).returncode:
        sys.exit("no Slurm here: run .ci/slurm-up.sh (as root) first")
    tmp = Path(tempfile.mkdtemp())
    ws = Workspace(tmp / "ws").ensure()
    local: list[float] = []
    slurm: list[float] = []
    local_up: list[float] = []
    slurm_up: list[float] = []
    bare: list[float] = []
    stops: list[float] = []
    kills: list[float] = []
    order = ["local", "slurm", "bare"]
    for i in range(args.trials):
        for backend in order[i % 3:] + order[: i % 3]:
            if backend == "bare":
                bare.append(bare_sbatch(tmp, i))
                continue
            jid, up, dt = first_row(ws, backend)
            (local if backend == "local" else slurm).append(dt)
            (local_up if backend == "local" else slurm_up).append(up)
            t0 = time.perf_counter()
            if backend == "slurm" and i % 2 == 0:
                sv.stop(ws, jid, wait=True)
                stops.append(time.perf_counter() - t0)
            elif backend == "slurm":
                sv.kill(ws, jid)
                kills.append(time.perf_counter() - t0)
            else:
                sv.kill(ws, jid)
    med = statistics.median
    print(f"submit -> trainer up ('started' event), local backend: {stats(local_up)}")
    print(f"submit -> trainer up ('started' event), Slurm backend: {stats(slurm_up)}")
    print(f"submit -> first metric row, local backend: {stats(local)}")
    print(f"submit -> first metric row, Slurm backend: {stats(slurm)}")
    print(f"submit -> first line, bare sbatch + srun + import torch: {stats(bare)}")
    print(f"ratio Slurm backend / local backend, trainer up (medians): {med(slurm_up) / med(local_up):.2f}x")
    print(f"ratio Slurm backend / local backend, first row (medians): {med(slurm) / med(local):.2f}x")
    print(f"ratio Slurm backend trainer up / bare sbatch (medians): {med(slurm_up) / med(bare):.2f}x")
    print(f"ratio Slurm backend first row / bare sbatch (medians): {med(slurm) / med(bare):.2f}x "
          f"(the trainer's own set-up and first step: {med(slurm) - med(slurm_up):+.2f}s, the same locally: "
          f"{med(local) - med(local_up):+.2f}s)")
    if stops:
        print(f"Slurm stop (latest.pt saved, job gone from squeue): {stats(stops)}")
    if kills:
        print(f"Slurm kill (scancel, job gone from squeue): {stats(kills)}")


if __name__ == "__main__":
    main()
