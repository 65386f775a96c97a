"""Evaluation, confusion matrices, misclassified galleries and training curves for vision runs (torch)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.vision.data import DatasetInfo, TensorData, normalize


@dataclass
class EvalResult:
    loss: float
    acc: float
    preds: torch.Tensor  # (N,) predicted class per sample, on the CPU

    def confusion(self, labels: torch.Tensor, num_classes: int) -> list[list[int]]:
        """Rows = true class, columns = predicted class."""
        idx = labels.cpu() * num_classes + self.preds
        return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes).tolist()


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: TensorData, info: DatasetInfo, batch_size: int = 1000,
             autocast: Callable[[], Any] | None = None) -> EvalResult:
    """Mean cross-entropy, accuracy and predictions over a whole split (model left in eval mode); ``autocast``
    is the training loop's mixed-precision context (none: full precision)."""
    model.eval()
    total, correct, preds = 0.0, 0, []
    for i in range(0, len(data), batch_size):
        x = normalize(data.x[i:i + batch_size], info)
        y = data.y[i:i + batch_size]
        with autocast() if autocast is not None else contextlib.nullcontext():
            logits = model(x)
        total += F.cross_entropy(logits.float(), y, reduction="sum").item()
        p = logits.argmax(1)
        correct += int((p == y).sum())
        preds.append(p.cpu())
    n = max(len(data), 1)
    return EvalResult(total / n, correct / n, torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long))


def misclassified_gallery(data: TensorData, preds: torch.Tensor, class_names: tuple[str, ...] | list[str],
                          png: str | os.PathLike[str], json_path: str | os.PathLike[str], limit: int = 36,
                          scale: int = 3) -> int:
    """Write a PNG grid of the first ``limit`` misclassified images plus a JSON index. Returns how many were wrong."""
    from core.atomic import atomic_write_json
    from core.render import tile_grid

    wrong = torch.nonzero(preds != data.y.cpu()).flatten()
    shown = wrong[:limit].tolist()
    items = [{"index": int(i), "true": int(data.y[i]), "predicted": int(preds[i]),
              "true_name": class_names[int(data.y[i])], "predicted_name": class_names[int(preds[i])]}
             for i in shown]
    atomic_write_json(Path(json_path), {"split": "test", "total_wrong": len(wrong), "total": len(data),
                                        "shown": items})
    if shown:
        imgs = data.x[shown].cpu().permute(0, 2, 3, 1).numpy()  # (N, H, W, C) uint8
        imgs = imgs[..., 0] if imgs.shape[-1] == 1 else imgs
        grid = tile_grid(imgs.astype(np.float32) / 255.0, pad=2)
        _save_labelled(grid, imgs.shape[1:3], [f"{i['true']}>{i['predicted']}" for i in items], png, scale,
                       gallery_caption(items))
    return len(wrong)


def gallery_caption(items: list[dict[str, Any]]) -> str:
    """What the tile labels mean, with the first tile as the example: ``3>7 = true 3, predicted 7``."""
    if not items:
        return ""
    first = items[0]
    example = f"{first['true']}>{first['predicted']} = true {first['true_name']}, predicted {first['predicted_name']}"
    names = "" if all(str(i["true"]) == i["true_name"] for i in items) else " (class numbers)"
    return f"misclassified test images; each label is true>predicted{names}, e.g. {example}"


def _save_labelled(grid: np.ndarray, tile: tuple[int, ...], labels: list[str], png: str | os.PathLike[str],
                   scale: int, caption: str = "") -> None:
    """Save an enlarged grid with "true>predicted" (class indices) in each tile's corner and a caption below that
    says so."""
    from PIL import Image, ImageDraw

    from core.atomic import atomic_write
    from core.render import to_uint8_rgb

    rgb = to_uint8_rgb(grid)
    grid_img = Image.fromarray(rgb).resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.Resampling.NEAREST)
    probe = ImageDraw.Draw(grid_img)
    lines = _wrap(probe, caption, grid_img.width - 8) if caption else []
    img = Image.new("RGB", (grid_img.width, grid_img.height + 14 * len(lines) + (6 if lines else 0)), "white")
    img.paste(grid_img, (0, 0))
    draw = ImageDraw.Draw(img)
    cols = (grid.shape[1] - 2) // (tile[1] + 2)
    for k, text in enumerate(labels):
        r, c = divmod(k, cols)
        x, y = (2 + c * (tile[1] + 2)) * scale + 2, (2 + r * (tile[0] + 2)) * scale + 1
        draw.text((x, y), text, fill=(255, 210, 0))
    for n, line in enumerate(lines):
        draw.text((4, grid_img.height + 3 + 14 * n), line, fill=(0, 0, 0))
    atomic_write(Path(png), lambda f: img.save(f, format="PNG"))


def _wrap(draw: Any, text: str, width: int) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels (broken at spaces)."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}") <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def save_json(path: str | os.PathLike[str], obj: Any) -> None:
    from core.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(obj, separators=(",", ":")))
