"""How many CPU threads inference may use beside the jobs that are training: the one policy for the CLI's
inference commands and the dashboard's panes. Light: reads run records; torch only where the count is applied.

torch starts one intra-op thread per core. With a job training on those cores, a classify or an explanation
then fights it for every core and runs many times slower (issue 13.18: `ncanvas explain` took 14-23 s beside a
CPU job, 1.07 s with one thread). So inference takes the cores the running jobs leave free, at least one:

- a CPU job uses its ``cpu_threads`` (else every core); under torchrun, one core per rank (torchrun sets
  ``OMP_NUM_THREADS=1`` for each);
- a GPU job keeps one core per rank busy feeding its GPU;
- queued, paused and ended jobs use none.

An explicit count wins: ``--threads N``, else ``OMP_NUM_THREADS`` when the user set it. Jobs of other workspaces
(or other programs) are not seen.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.paths import Workspace
from core.runrec import RUNNING, STOPPING, JobRecord, list_jobs


def cpu_cores() -> int:
    """The cores this process may run on (its affinity, e.g. a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _running(rec: JobRecord) -> bool:
    """Its process is there and not stopped by `jobs pause`."""
    if rec.state not in (RUNNING, STOPPING) or not rec.pid:
        return False
    try:
        with open(f"/proc/{rec.pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("T", "t", "Z", "X")
    except (OSError, IndexError):
        return False


def job_cores(rec: JobRecord, cores: int) -> int:
    """The cores a running job keeps busy (see the module docstring)."""
    ranks = max(1, rec.nproc)
    if rec.gpu != "cpu" or ranks > 1:
        return ranks
    threads = rec.config.get("cpu_threads")
    return min(cores, threads) if isinstance(threads, int) and threads > 0 else cores


def busy_cores(ws: Workspace, cores: int) -> int:
    """Cores the workspace's running jobs keep busy."""
    try:
        records = list_jobs(ws)
    except OSError:
        return 0
    return sum(job_cores(rec, cores) for rec in records if _running(rec))


def workspace_near(path: str | os.PathLike[str] | None) -> Workspace | None:
    """The workspace a checkpoint lies in (``<root>/checkpoints/<id>/<file>``), if it does."""
    if path is None:
        return None
    for parent in Path(path).resolve().parents:
        if parent.name == "checkpoints" and (parent.parent / "logs").is_dir():
            return Workspace(parent.parent)
    return None


def inference_threads(requested: int | None = None, ws: Workspace | None = None,
                      cores: int | None = None) -> int:
    """The number of torch threads for inference now: ``requested``, else ``$OMP_NUM_THREADS``, else the cores
    that the running jobs of ``ws`` leave free (at least one)."""
    if requested:
        return max(1, int(requested))
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = cores or cpu_cores()
    busy = busy_cores(ws, cores) if ws is not None else 0
    return max(1, cores - busy)


def use_inference_threads(requested: int | None = None, ws: Workspace | None = None,
                          near: str | os.PathLike[str] | None = None) -> int:
    """Apply :func:`inference_threads` to torch (``torch.set_num_threads``) and return the count. ``ws`` is the
    workspace whose jobs to spare; without it, the one ``near`` (a checkpoint's path) lies in, else the default
    workspace (``NCANVAS_HOME``, ``ncanvas.toml``, ...)."""
    import torch

    if ws is None:
        ws = workspace_near(near)
    if ws is None:
        try:
            ws = Workspace.resolve()
        except OSError:
            ws = None
    n = inference_threads(requested, ws)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
