"""``ncanvas export-json RUN``: a cnn run as one JSON file for the browser demo (torch; import lazily).

Layout (``format: "ncanvas-cnn-export"``, version 1)::

    {"run", "arch", "dataset", "class_names", "input": {"channels", "size", "mean", "std"},
     "architecture": [{"name", "type", "params", "out_shape", ...}, ...],
     "samples": [{"label", "shape": [H, W, C], "pixels": [uint8, ...]}],
     "epochs": [{"epoch", "checkpoint", "step", "partial", "batch_in_epoch",
                 "metrics": {"train_loss", "val_loss", "val_acc", "test_loss", "test_acc"},
                 "weights": {name: {"shape", "data"}},                # exact float32 values, row-major
                 "feature_maps": [{layer: {"shape", "data"}}, ...]}]} # per sample, after each ReLU, 4 decimals

Tensors are flat row-major lists with their shape, which JavaScript reads without reshaping libraries.
``epoch`` counts completed epochs. A run stopped mid-epoch adds its ``latest.pt`` as ``partial: true`` (weights
``batch_in_epoch`` batches into the next epoch, at global ``step``; no epoch metrics), after that epoch's entry.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from core.errors import NcanvasError

FORMAT = "ncanvas-cnn-export"
VERSION = 1


def _tensor_json(t: torch.Tensor, decimals: int | None = None) -> dict[str, Any]:
    data = t.detach().cpu().flatten()
    values = data.tolist() if decimals is None or not data.is_floating_point() else \
        [round(v, decimals) for v in data.tolist()]
    return {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""), "data": values}


def tensor_from_json(obj: dict[str, Any]) -> torch.Tensor:
    dtype = getattr(torch, obj.get("dtype", "float32"))
    return torch.tensor(obj["data"], dtype=dtype).view(obj["shape"])


def state_dict_from_export(epoch_entry: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model state of one exported epoch (the round trip of ``weights``)."""
    return {k: tensor_from_json(v) for k, v in epoch_entry["weights"].items()}


@dataclass(frozen=True)
class _Saved:
    """One checkpoint to export. ``epoch`` counts completed epochs; ``batch_in_epoch > 0`` marks a ``latest.pt``
    written by a stop partway into epoch ``epoch + 1`` (its weights are not those of any epoch's end)."""

    epoch: int
    path: Path
    step: int | None = None
    batch_in_epoch: int = 0

    @property
    def partial(self) -> bool:
        return self.batch_in_epoch > 0


def _epoch_checkpoints(ckpt_dir: Path) -> list[_Saved]:
    """epoch_<n>.pt files, plus latest.pt: as its epoch when that epoch has no file of its own, as a partial
    entry when a stop wrote it mid-epoch, and not at all when it repeats an epoch file."""
    from core.checkpoint import load_checkpoint

    found: dict[int, _Saved] = {}
    for p in ckpt_dir.glob("epoch_*.pt"):
        m = re.fullmatch(r"epoch_(\d+)\.pt", p.name)
        if m:
            found[int(m.group(1))] = _Saved(int(m.group(1)), p)
    out = list(found.values())
    latest = ckpt_dir / "latest.pt"
    if latest.is_file():
        ck = load_checkpoint(latest, kind="cnn")
        saved = _Saved(int(ck.get("epoch", 0)), latest, ck.get("step"), int(ck.get("batch_in_epoch") or 0))
        if saved.partial or saved.epoch not in found:
            out.append(saved)
    return sorted(out, key=lambda s: (s.epoch, s.partial))


def _epoch_metrics(metrics_path: Path) -> dict[int, dict[str, float]]:
    from core.metrics import iter_rows

    out: dict[int, dict[str, float]] = {}
    train: dict[int, list[float]] = {}
    if not metrics_path.is_file():
        return out
    for row in iter_rows(metrics_path):
        if row.get("event") == "epoch_end":
            out[int(row["epoch"])] = {k: row[k] for k in ("val_loss", "val_acc", "test_loss", "test_acc") if k in row}
        elif row.get("split") == "train" and isinstance(row.get("loss"), (int, float)):
            train.setdefault(int(row.get("epoch", 0)) + 1, []).append(float(row["loss"]))  # rows of epoch e-1 end at e
    for ep, losses in train.items():
        out.setdefault(ep, {})["train_loss"] = sum(losses) / len(losses)
    return out


def _feature_maps(model: nn.Module, xs: torch.Tensor, decimals: int) -> list[dict[str, Any]]:
    names = [n for n, m in model.named_modules() if isinstance(m, nn.ReLU)]
    from core.vision.interpret.visualize import feature_maps

    out = []
    for i in range(len(xs)):
        maps = feature_maps(model, xs[i:i + 1], names)
        out.append({n: _tensor_json(torch.from_numpy(a), decimals) for n, a in maps.items() if a.ndim == 3})
    return out


def export_run(ckpt_dir: str | os.PathLike[str], metrics_path: str | os.PathLike[str] | None,
               out: str | os.PathLike[str], max_samples: int = 4, decimals: int = 4) -> dict[str, Any]:
    """Write the export JSON for the run whose checkpoints are in ``ckpt_dir``; returns a small summary."""
    from core.atomic import atomic_write_text
    from core.checkpoint import load_checkpoint, load_model_state
    from core.vision.data import DatasetInfo, normalize
    from core.vision.models import build_model, describe

    ckpt_dir = Path(ckpt_dir)
    epochs = _epoch_checkpoints(ckpt_dir) if ckpt_dir.is_dir() else []
    if not epochs:
        raise NcanvasError(f"no cnn checkpoints in {ckpt_dir}")
    first = load_checkpoint(epochs[-1].path, kind="cnn")
    meta = (first.get("extra") or {}).get("vision")
    if not isinstance(meta, dict):
        raise NcanvasError(f"{epochs[-1].path} has no vision metadata (not written by the cnn job)")
    c, size = int(meta["in_channels"]), int(meta["image_size"])
    model = build_model(first["arch"], c, int(meta["num_classes"]), size).eval()
    info = DatasetInfo(meta["dataset"], c, size, tuple(meta["class_names"]), tuple(meta["mean"]),
                       tuple(meta["std"]), (), {})
    samples = meta["samples"][:max_samples]
    xs = normalize(samples, info)
    doc: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "run": ckpt_dir.name, "arch": first["arch"],
        "dataset": meta["dataset"], "class_names": list(meta["class_names"]),
        "input": {"channels": c, "size": size, "mean": list(meta["mean"]), "std": list(meta["std"])},
        "architecture": describe(model, size, c),
        "samples": [{"label": int(meta["sample_labels"][i]), "shape": [size, size, c],
                     "pixels": samples[i].permute(1, 2, 0).flatten().tolist()} for i in range(len(samples))],
        "epochs": [],
    }
    per_epoch = _epoch_metrics(Path(metrics_path)) if metrics_path else {}
    for saved in epochs:
        ck = first if saved.path == epochs[-1].path else load_checkpoint(saved.path, kind="cnn")
        load_model_state(model, ck, saved.path)
        model.eval()
        doc["epochs"].append({
            "epoch": saved.epoch, "checkpoint": saved.path.name, "step": ck.get("step"), "partial": saved.partial,
            "batch_in_epoch": saved.batch_in_epoch,
            "metrics": {} if saved.partial else per_epoch.get(saved.epoch, {}),  # epoch metrics describe its end
            "weights": {k: _tensor_json(v) for k, v in ck["model"].items()},
            "feature_maps": _feature_maps(model, xs, decimals)})
    atomic_write_text(out, json.dumps(doc, separators=(",", ":")))
    part = next((s for s in epochs if s.partial), None)
    return {"path": str(out), "epochs": [s.epoch for s in epochs if not s.partial], "samples": len(samples),
            "partial": None if part is None else {"epoch": part.epoch, "step": part.step,
                                                  "batch_in_epoch": part.batch_in_epoch},
            "bytes": Path(out).stat().st_size}


def load_export(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise NcanvasError(f"cannot read {path}: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise NcanvasError(f"{path} is not an ncanvas cnn export")
    return doc
