"""The ncanvas checkpoint format (torch). Import lazily.

A checkpoint describes itself: format tag, kind, architecture, config, step/epoch, position inside the epoch,
model/optimizer/scheduler/AMP-scaler state, RNG states (python, numpy, torch, cuda) and metric summary. Every
value is something ``torch.load(weights_only=True)`` accepts, so loading never executes pickled code.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.atomic import atomic_write, atomic_write_named
from core.errors import CheckpointError

FORMAT = "ncanvas-checkpoint"
FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------------- RNG states

def rng_state() -> dict[str, Any]:
    """Every RNG that training touches, as weights_only-loadable values."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, torch.from_numpy(np.asarray(np_keys, dtype=np.int64)), int(np_pos),
                  int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------- save / load

def make_checkpoint(
    *,
    kind: str,
    arch: str,
    config: dict[str, Any],
    model: dict[str, Any],
    step: int = 0,
    epoch: int = 0,
    batch_in_epoch: int = 0,
    optimizer: dict[str, Any] | None = None,
    scheduler: dict[str, Any] | None = None,
    scaler: dict[str, Any] | None = None,
    best_metric: float | None = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    with_rng: bool = True,
) -> dict[str, Any]:
    """Assemble a checkpoint dict; ``model`` is a state dict."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "arch": arch,
        "config": config,
        "step": int(step),
        "epoch": int(epoch),
        "batch_in_epoch": int(batch_in_epoch),
        "model": model,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "scaler": scaler,
        "rng": rng_state() if with_rng else None,
        "best_metric": best_metric,
        "metrics": metrics or {},
        "extra": extra or {},
    }


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> Path:
    """Write atomically: a crash leaves the previous file at ``path`` intact."""
    path = Path(path)
    atomic_write(path, lambda f: torch.save(ckpt, f))
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    kind: str | tuple[str, ...] | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load with ``weights_only=True``; any problem becomes one :class:`CheckpointError` line."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for bad files (UnpicklingError, KeyError, EOFError, ...)
        if not zipfile.is_zipfile(path):
            raise CheckpointError(f"{path} is truncated or not a torch checkpoint") from None
        detail = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        if isinstance(e, pickle.UnpicklingError):
            raise CheckpointError(f"{path} holds objects a safe load refuses ({detail})") from None
        raise CheckpointError(f"{path} is a damaged checkpoint ({detail})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an ncanvas checkpoint")
    version = ckpt.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{path} has a damaged header: format_version {version!r:.40} is not a number")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {version}; upgrade ncanvas to read it")
    model = ckpt.get("model")
    if not isinstance(model, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in model.items()):
        raise CheckpointError(f"{path} holds no model weights (its 'model' entry is {type(model).__name__}, not a "
                              "table of tensors)")
    for key in ("config", "extra", "metrics"):
        if ckpt.get(key) is not None and not isinstance(ckpt[key], dict):
            raise CheckpointError(f"{path} has a damaged header: {key!r} is a {type(ckpt[key]).__name__}, not a table")
    if kind is not None:
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        if ckpt.get("kind") not in kinds:
            raise CheckpointError(
                f"{path} is a {ckpt.get('kind')!r} checkpoint ({ckpt.get('arch')}); expected {' or '.join(kinds)}"
            )
    return ckpt


def check_finite_weights(ckpt: dict[str, Any], path: str | os.PathLike[str] = "checkpoint") -> None:
    """Refuse weights holding NaN or inf (a diverged run, an edited file): their outputs would be NaN too, and
    fail later in a less clear place (a probability bar, a sampler)."""
    bad = [k for k, v in ckpt["model"].items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise CheckpointError(f"{path} holds non-finite weights (NaN or inf in {bad[0]}{more}): a diverged run? "
                              "use an earlier checkpoint")


def load_model_state(model: torch.nn.Module, ckpt: dict[str, Any],
                     path: str | os.PathLike[str] = "checkpoint") -> None:
    """``model.load_state_dict`` with a one-line error when the architecture does not match."""
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError) as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else type(e).__name__)
        raise CheckpointError(
            f"{path} ({ckpt.get('arch')}) does not fit this model: {detail[:200]}"
        ) from None


def summary(ckpt: dict[str, Any]) -> dict[str, Any]:
    """A JSON-friendly description (no tensors) for ``ncanvas ckpt inspect``."""
    model = ckpt.get("model") or {}
    n_params = sum(int(t.numel()) for t in model.values() if isinstance(t, torch.Tensor))
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in model.values() if isinstance(t, torch.Tensor)})
    return {
        "format_version": ckpt.get("format_version"),
        "kind": ckpt.get("kind"),
        "arch": ckpt.get("arch"),
        "step": ckpt.get("step"),
        "epoch": ckpt.get("epoch"),
        "batch_in_epoch": ckpt.get("batch_in_epoch"),
        "best_metric": ckpt.get("best_metric"),
        "parameters": n_params,
        "tensors": len(model),
        "dtypes": dtypes,
        "has_optimizer": ckpt.get("optimizer") is not None,
        "has_scheduler": ckpt.get("scheduler") is not None,
        "has_scaler": ckpt.get("scaler") is not None,
        "has_rng": ckpt.get("rng") is not None,
        "config": ckpt.get("config"),
        "metrics": ckpt.get("metrics"),
    }


def save_model(model: torch.nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Export weights as safetensors; tied (shared) tensors are stored once (``safetensors.torch.save_model``).

    Written like every checkpoint (:func:`core.atomic.atomic_write_named`): a unique temp file, fsync, rename, so two
    exports never share a temp name, a crash leaves the old file, and a failed write leaves no temp behind."""
    from safetensors.torch import save_model as st_save_model

    path = Path(path)
    atomic_write_named(path, lambda tmp: st_save_model(model, str(tmp), metadata=metadata))
    return path


def load_model(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load safetensors weights written by :func:`save_model` (tied weights restored)."""
    from safetensors.torch import load_model as st_load_model

    try:
        st_load_model(model, str(path))
    except Exception as e:  # safetensors raises several types; the user needs one line
        raise CheckpointError(f"{path}: {str(e).splitlines()[0][:200]}") from None
    return model
