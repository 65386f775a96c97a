"""Art datasets in the common WikiArt layout: an image root plus ``labels.csv`` with ``path,artist,style,genre``.

Labels may be names or integer ids; an unknown name is reported once and that head's label is masked (-1).
Small sets are decoded once into a uint8 tensor (fast epochs); ``stream=True`` decodes per batch instead.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.art.labels import HEADS, LABELS
from core.errors import NcanvasError
from core.imageio import open_image, to_mode

MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics: the pretrained backbones expect them
STD = (0.229, 0.224, 0.225)


@dataclass
class ArtTable:
    """Image paths and a (N, 3) label matrix (artist, style, genre), -1 where missing or unknown."""

    paths: list[Path]
    labels: torch.Tensor
    unknown: dict[str, set[str]]


def _label_index(head: str, value: str, unknown: dict[str, set[str]]) -> int:
    names = LABELS[head]
    value = value.strip()
    if not value:
        return -1
    if value.isdigit():
        idx = int(value)
        if idx < len(names):
            return idx
    elif value in names:
        return names.index(value)
    if value not in unknown.setdefault(head, set()):
        unknown[head].add(value)
        print(f"[ncanvas] unknown {head} {value!r}: that label is skipped", flush=True)
    return -1


def read_table(csv_path: str | Path, image_root: str | Path | None = None) -> ArtTable:
    """Parse ``labels.csv``; image paths are relative to ``image_root`` (default: the CSV's folder)."""
    csv_path = Path(csv_path)
    if csv_path.is_dir():
        csv_path = csv_path / "labels.csv"
    if not csv_path.is_file():
        raise NcanvasError(f"no labels CSV at {csv_path} (expected columns path,artist,style,genre)")
    root = Path(image_root) if image_root else csv_path.parent
    paths: list[Path] = []
    labels: list[list[int]] = []
    unknown: dict[str, set[str]] = {}
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"path", *HEADS} - set(reader.fieldnames or [])
        if missing:
            raise NcanvasError(f"{csv_path} lacks column(s) {', '.join(sorted(missing))}")
        for row in reader:
            paths.append(root / row["path"])
            labels.append([_label_index(h, row.get(h) or "", unknown) for h in HEADS])
    if not paths:
        raise NcanvasError(f"{csv_path} lists no images")
    return ArtTable(paths, torch.tensor(labels, dtype=torch.long), unknown)


def fit_crop(im: Image.Image, size: int) -> np.ndarray:
    """(size, size, 3) uint8: RGB (16-bit/float stretched, alpha onto black, EXIF orientation applied), shorter
    side resized to ``size``, then centre-cropped."""
    im = to_mode(im, "RGB")
    w, h = im.size
    s = size / min(w, h)
    im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.Resampling.BILINEAR)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.array(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def load_image(path: Path, size: int) -> np.ndarray:
    """:func:`fit_crop` of an image file, opened by :func:`core.imageio.open_image` (one clear error line for
    missing, unreadable or oversized files)."""
    with open_image(path) as im:
        return fit_crop(im, size)


def load_images(paths: list[Path], size: int) -> torch.Tensor:
    """Decode every image once into a (N, 3, size, size) uint8 tensor."""
    arr = np.stack([load_image(p, size) for p in paths])  # (N, H, W, 3)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float, ImageNet-normalised."""
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop (pad 1/8, reflect) and horizontal flip, batched on the tensor's device."""
    b, _, h, w = x.shape
    pad = max(1, h // 8)
    xp = torch.nn.functional.pad(x.float(), (pad, pad, pad, pad), mode="reflect")
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).tolist()
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).tolist()
    flip = (torch.rand(b, generator=generator) < 0.5).tolist()
    out = torch.stack([xp[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
    idx = [i for i in range(b) if flip[i]]
    if idx:
        out[idx] = out[idx].flip(-1)
    return out


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(n * val_fraction))) if n > 1 else 0
    return perm[n_val:], perm[:n_val]
