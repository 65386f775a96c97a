"""Gathering the evidence that :mod:`jobs.triage` decides on. Light: torch only if the job already imported it.

Two moments: the job process describing its own exception (:func:`from_exception`), and the supervisor finding a
job whose process vanished without a final state (:func:`from_vanished`). The machine facts they use (the
kernel's OOM-kill counter, the memory limit, the boot time, a process's memory) are read from ``/proc`` and
``/sys/fs/cgroup`` (cgroup v2 or v1), and are ``None`` wherever they cannot be read.
"""

from __future__ import annotations

import resource
import shutil
import sys
from pathlib import Path
from typing import Any

from jobs.triage import Evidence, frames_from_traceback

CGROUP_ROOT = Path("/sys/fs/cgroup")


# ============================================================================================ machine facts


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def memory_cgroup(pid: int | str = "self") -> Path | None:
    """The folder of the memory cgroup a process is in (v2: its unified path; v1: the memory controller's)."""
    text = _read(Path(f"/proc/{pid}/cgroup")) or ""
    for line in text.splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "" and (CGROUP_ROOT / "cgroup.controllers").is_file():  # v2
            return CGROUP_ROOT / path.lstrip("/")
        if "memory" in controllers.split(","):  # v1: a container sees its own cgroup at the mount's root
            nested = CGROUP_ROOT / "memory" / path.lstrip("/")
            return nested if nested.is_dir() else CGROUP_ROOT / "memory"
    return None


def oom_kills(cgroup: Path | None) -> int | None:
    """The kernel's count of OOM kills in ``cgroup`` (or system-wide, from /proc/vmstat, where the cgroup has
    none to show)."""
    for path, key in ((cgroup and cgroup / "memory.events", "oom_kill"),
                      (cgroup and cgroup / "memory.oom_control", "oom_kill"), (Path("/proc/vmstat"), "oom_kill")):
        text = _read(path) if path else None
        for line in (text or "").splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    return None


def memory_limit_mb(cgroup: Path | None) -> float | None:
    """The cgroup's memory limit, else the machine's memory, in MiB."""
    for name in ("memory.max", "memory.limit_in_bytes"):
        text = (_read(cgroup / name) or "").strip() if cgroup else ""
        if text.isdigit() and int(text) < 1 << 60:  # v1 writes a huge number for "no limit"
            return int(text) / 2**20
    meminfo = _read(Path("/proc/meminfo")) or ""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024
    return None


def address_space_limit_mb() -> float | None:
    """This process's ``RLIMIT_AS`` (ulimit -v) in MiB, when one is set."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft / 2**20


def boot_time() -> float | None:
    for line in (_read(Path("/proc/stat")) or "").splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return None


def rss_mb(pid: int | str = "self") -> float | None:
    for line in (_read(Path(f"/proc/{pid}/status")) or "").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def start_facts() -> dict[str, Any]:
    """What the job records when it starts, to compare with when it vanishes (progress fields)."""
    cg = memory_cgroup()
    return {"cgroup": str(cg) if cg else None, "oom_kills0": oom_kills(cg)}


# ============================================================================================ the two moments


def _gpu_memory() -> dict[str, float]:
    torch = sys.modules.get("torch")  # never imported here: a job that never touched torch has no GPU to ask
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    try:
        free, total = torch.cuda.mem_get_info()
        return {"peak_gib": torch.cuda.max_memory_allocated() / 2**30, "total_gib": total / 2**30,
                "free_gib": free / 2**30}
    except Exception:  # noqa: BLE001 - a broken CUDA context: the rules do without these numbers
        return {}


def _disk_free(path: Path) -> dict[str, int]:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return {str(path): shutil.disk_usage(probe).free}
    except OSError:
        return {}


def from_exception(exc: BaseException, *, job_id: str, kind: str, config: dict[str, Any], code_root: str,
                   ckpt_dir: Path, latest_step: int | None) -> Evidence:
    """The job process's own account of the exception that ended it."""
    limits = [x for x in (memory_limit_mb(memory_cgroup()), address_space_limit_mb()) if x is not None]
    return Evidence(job_id=job_id, kind=kind, config=config, exc_type=type(exc).__name__,
                    exc_bases=tuple(c.__name__ for c in type(exc).__mro__[1:]), message=str(exc),
                    frames=frames_from_traceback(exc.__traceback__, code_root), gpu_mem=_gpu_memory(),
                    disk_free=_disk_free(ckpt_dir), latest_step=latest_step, rss_mb=rss_mb(),
                    mem_limit_mb=min(limits, default=None))


def from_vanished(*, job_id: str, kind: str, config: dict[str, Any], progress: dict[str, Any],
                  stop_requested: bool, log_tail: list[str], latest_kept: bool = False) -> Evidence:
    """A job whose process is gone without a final state, as the supervisor finds it."""
    cg = Path(progress["cgroup"]) if progress.get("cgroup") else None
    before, now = progress.get("oom_kills0"), oom_kills(cg)
    heartbeat, booted = progress.get("heartbeat"), boot_time()
    return Evidence(
        job_id=job_id, kind=kind, config=config, vanished=True, stop_requested=stop_requested,
        oom_kills=max(0, now - before) if isinstance(before, int) and now is not None else 0,
        rss_mb=progress.get("rss_mb"), mem_limit_mb=memory_limit_mb(cg),
        rebooted_at=booted if booted and isinstance(heartbeat, (int, float)) and booted > heartbeat else None,
        last_heartbeat=heartbeat, log_tail=tuple(log_tail), latest_step=progress.get("saved_step"),
        latest_kept=latest_kept)


def code_root() -> str:
    return str(Path(__file__).resolve().parent.parent)
