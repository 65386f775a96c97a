"""Which mixed precision a CUDA device really has; shared by the LM trainer and the art CNN's loop (torch).

``torch.cuda.is_bf16_supported()`` answers True on a T4 or V100 in recent torch (its ``including_emulation``
defaults to True): bf16 then runs emulated, several times slower than fp16 + GradScaler on the same card.
"""

from __future__ import annotations

import inspect

import torch


def native_bf16() -> bool:
    """True when the current CUDA device computes bf16 in hardware (compute capability 8.0 and newer).

    Asks torch without emulation where its ``is_bf16_supported`` takes ``including_emulation``. An older torch
    without the keyword also says yes when a bf16 tensor can merely be created, so there the compute capability
    decides (ROCm builds keep torch's answer: no capability numbers to read there)."""
    if not torch.cuda.is_available():
        return False
    check = torch.cuda.is_bf16_supported
    if "including_emulation" in inspect.signature(check).parameters:
        return bool(check(including_emulation=False))
    if getattr(torch.version, "hip", None):
        return bool(check())
    return torch.cuda.get_device_capability()[0] >= 8
