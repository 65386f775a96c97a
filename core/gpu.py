"""GPU facts through NVML (nvidia-ml-py), and the choice of a job's GPU from them. No torch.

Anything NVML cannot tell reads as N/A and never raises; only a ``--gpu`` choice that names no visible GPU is an
error (one line).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import NcanvasError

DRIVER_GPUS = Path("/proc/driver/nvidia/gpus")  # one folder per GPU the NVIDIA kernel driver has found
_lock = threading.Lock()
_state: dict[str, Any] = {"init": None}


@dataclass(frozen=True)
class GpuStat:
    index: int
    name: str
    util_pct: float | None
    mem_used_mb: float | None
    mem_total_mb: float | None
    uuid: str | None = None  # "GPU-8f3c...": what CUDA_VISIBLE_DEVICES may name instead of an index

    @property
    def mem_free_mb(self) -> float | None:
        if self.mem_used_mb is None or self.mem_total_mb is None:
            return None
        return self.mem_total_mb - self.mem_used_mb


def _nvml() -> Any | None:
    with _lock:
        if _state["init"] is None:
            try:
                import pynvml

                pynvml.nvmlInit()
                _state["init"] = pynvml
            except Exception:  # no library, no driver, no GPU: all mean "N/A"
                _state["init"] = False
        return _state["init"] or None


def nvml_available() -> bool:
    return _nvml() is not None


def gpu_stats() -> list[GpuStat]:
    """One entry per GPU NVML sees, numbered as NVML does (PCI bus order, whatever ``CUDA_VISIBLE_DEVICES`` says);
    [] where NVML is missing."""
    nv = _nvml()
    if nv is None:
        return []
    out = []
    try:
        count = nv.nvmlDeviceGetCount()
    except Exception:
        return []
    for i in range(count):
        try:
            h = nv.nvmlDeviceGetHandleByIndex(i)
            name = nv.nvmlDeviceGetName(h)
            name = name.decode() if isinstance(name, bytes) else str(name)
        except Exception:
            continue
        try:
            util: float | None = float(nv.nvmlDeviceGetUtilizationRates(h).gpu)
        except Exception:
            util = None
        try:
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            used, total = mem.used / 2**20, mem.total / 2**20
        except Exception:
            used = total = None
        out.append(GpuStat(i, name, util, used, total, _uuid(nv, h)))
    return out


def _uuid(nv: Any, handle: Any) -> str | None:
    try:
        uuid = nv.nvmlDeviceGetUUID(handle)
    except Exception:
        return None
    return uuid.decode() if isinstance(uuid, bytes) else str(uuid)


@dataclass(frozen=True)
class VisibleGpu:
    """One device a job may use: ``id`` is what goes into the job's ``CUDA_VISIBLE_DEVICES`` (the NVML index, with
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID``; or the caller's own entry where NVML does not know it, e.g. a MIG UUID)."""

    id: str
    stat: GpuStat | None


def visible_gpus(stats: list[GpuStat], cuda_visible: str | None) -> list[VisibleGpu]:
    """The GPUs a caller may use, in its own CUDA numbering: device N of the caller is entry N.

    ``cuda_visible`` is the caller's ``CUDA_VISIBLE_DEVICES`` (None: unset, every NVML GPU). Its entries are indices
    (read in PCI bus order, the order the job gets too) or UUIDs, possibly abbreviated; like CUDA, the list ends at
    the first entry naming no device ("-1" hides them all). Without NVML the entries are taken as they are."""
    if cuda_visible is None:
        return [VisibleGpu(str(s.index), s) for s in stats]
    out: list[VisibleGpu] = []
    for entry in (e.strip() for e in cuda_visible.split(",")):
        if not entry:
            break
        if not stats:
            out.append(VisibleGpu(entry, None))
            continue
        stat = _match(stats, entry)
        if stat is not None:
            out.append(VisibleGpu(str(stat.index), stat))
        elif entry.upper().startswith("MIG-"):  # a MIG slice: NVML lists its parent GPU, CUDA knows the UUID
            out.append(VisibleGpu(entry, None))
        else:
            break
    return out


def _match(stats: list[GpuStat], entry: str) -> GpuStat | None:
    if entry.lstrip("-").isdigit():
        return next((s for s in stats if s.index == int(entry)), None)
    hits = [s for s in stats if s.uuid and s.uuid.lower().startswith(entry.lower())]
    return hits[0] if len(hits) == 1 else None  # an ambiguous prefix names no device, as in CUDA


def process_gpu_memory_mb(pids: set[int]) -> float | None:
    """GPU memory held by any of ``pids`` (e.g. a paused job's process group), or None if unknown."""
    nv = _nvml()
    if nv is None:
        return None
    total = 0.0
    try:
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            for p in nv.nvmlDeviceGetComputeRunningProcesses(h):
                if p.pid in pids and p.usedGpuMemory:
                    total += p.usedGpuMemory / 2**20
    except Exception:
        return None
    return total


# ===================================================================================== a job's GPU


def driver_gpu_count() -> int | None:
    """How many GPUs the NVIDIA kernel driver has found (0 without a driver), where NVML cannot tell; None when
    unknown."""
    try:
        return sum(1 for _ in DRIVER_GPUS.iterdir())
    except FileNotFoundError:
        return 0
    except OSError:
        return None


def check_gpu_syntax(gpu: str) -> str:
    """``auto``, ``cpu`` or GPU indices like ``0`` / ``0,1`` (normalised), else one clear error."""
    gpu = str(gpu).strip().lower()
    if gpu in ("auto", "cpu") or (gpu and all(part.isdigit() for part in gpu.split(","))):
        return gpu
    raise NcanvasError(f"--gpu must be auto, cpu or a GPU index; got {gpu!r}")


def resolve_gpu(gpu: str, gpus: int = 1) -> str:
    """'cpu', or the physical GPU(s) a job runs on, as NVML numbers them (PCI bus order).

    The caller's ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs) bounds the choice: ``auto`` picks the most free memory
    among the GPUs it allows (the CPU where NVML sees none), and ``N`` is the caller's N-th device, as CUDA would
    number it in the caller's shell. The result goes into the job's own ``CUDA_VISIBLE_DEVICES``, with
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so that CUDA numbers the GPUs as NVML does (``jobs.supervisor._env``).
    """
    gpu = check_gpu_syntax(gpu)
    if gpu == "cpu":
        return "cpu"
    stats = gpu_stats()
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    visible = visible_gpus(stats, cvd)
    if gpu == "auto":
        if not stats or not visible:
            return "cpu"
        order = sorted(visible, key=_most_free_first)  # stable: GPUs without memory figures keep their order
        return ",".join(v.id for v in order[:gpus])
    wanted = [int(i) for i in gpu.split(",")]
    if not visible:  # neither NVML nor the caller's CUDA_VISIBLE_DEVICES tells what exists: ask the driver
        if cvd is not None:
            raise NcanvasError(f"--gpu {gpu}: CUDA_VISIBLE_DEVICES={cvd!r} hides every GPU")
        count = driver_gpu_count()
        if count == 0:
            raise NcanvasError(f"--gpu {gpu}: no GPU here (no NVIDIA driver found); use --gpu cpu or --gpu auto")
        if count is not None and any(i >= count for i in wanted):
            raise NcanvasError(f"--gpu {gpu}: only {count} GPU(s) visible ({_numbers(count)})")
        return gpu
    if any(i >= len(visible) for i in wanted):
        raise NcanvasError(f"--gpu {gpu}: only {len(visible)} GPU(s) visible" + _visible_note(visible, cvd))
    return ",".join(visible[i].id for i in wanted)


def _most_free_first(v: VisibleGpu) -> float:
    free = v.stat.mem_free_mb if v.stat is not None else None
    return float("inf") if free is None else -free


def _visible_note(visible: list[VisibleGpu], cvd: str | None) -> str:
    if cvd is None:
        return f" ({_numbers(len(visible))})"
    return f" (CUDA_VISIBLE_DEVICES={cvd}: physical {', '.join(v.id for v in visible)})"


def _numbers(count: int) -> str:
    return "use 0, auto or cpu" if count == 1 else f"use 0 to {count - 1}, auto or cpu"


def fmt_mb(mb: float | None) -> str:
    return "N/A" if mb is None else (f"{mb / 1024:.1f}G" if mb >= 1024 else f"{mb:.0f}M")
