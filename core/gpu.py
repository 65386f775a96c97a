"""GPU facts through NVML (nvidia-ml-py). No torch; anything missing reads as N/A, never raises."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

_lock = threading.Lock()
_state: dict[str, Any] = {"init": None}


@dataclass(frozen=True)
class GpuStat:
    index: int
    name: str
    util_pct: float | None
    mem_used_mb: float | None
    mem_total_mb: float | None

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
    """One entry per visible GPU; [] where NVML is missing."""
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
        out.append(GpuStat(i, name, util, used, total))
    return out


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


def pick_gpu() -> int | None:
    """The visible GPU with the most free memory, or None without NVML/GPUs."""
    stats = [s for s in gpu_stats() if s.mem_free_mb is not None]
    if not stats:
        return None
    return max(stats, key=lambda s: s.mem_free_mb or 0.0).index


def fmt_mb(mb: float | None) -> str:
    return "N/A" if mb is None else (f"{mb / 1024:.1f}G" if mb >= 1024 else f"{mb:.0f}M")
