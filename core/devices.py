"""The ``--device`` of the inference commands, checked before a model is loaded: ``cpu``, ``cuda`` or ``cuda:N``.

Light at import; torch is imported only to ask about CUDA.
"""

from __future__ import annotations

import re

from core.errors import NcanvasError


def check_device(device: str) -> str:
    """``device`` normalised, or one line saying why it cannot run a model here (no GPU, no such GPU, a device
    type that holds no data such as ``meta``)."""
    name = str(device).strip().lower()
    m = re.fullmatch(r"(cpu|cuda)(?::(\d+))?", name)
    if m is None:
        raise NcanvasError(f"--device must be cpu, cuda or cuda:N; got {device!r}")
    if m.group(1) == "cpu":
        if m.group(2) not in (None, "0"):
            raise NcanvasError(f"--device {device}: there is one CPU device (cpu)")
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        raise NcanvasError(f"--device {device}: no CUDA GPU here (no usable NVIDIA driver); use --device cpu")
    count = torch.cuda.device_count()
    if m.group(2) is not None and int(m.group(2)) >= count:
        raise NcanvasError(f"--device {device}: only {count} CUDA device(s) (cuda:0 to cuda:{count - 1})")
    return name
