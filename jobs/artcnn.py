"""Job kind ``artcnn``: the multi-head art classifier (artist / style / genre) on a WikiArt-layout set.

Loss is the sum of the three cross-entropies with missing labels masked. Per-head accuracy and top-5 go into the
metrics; checkpoints carry the label names, image size and normalisation, so inference needs nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import NcanvasError
from jobs.config import LoopConfig, opt, to_dict
from jobs.task import Evaluation, Task

if TYPE_CHECKING:
    from jobs.runtime import JobRuntime


@dataclass
class ArtCNNConfig(LoopConfig):
    epochs: int = opt(10, "passes over the training set", min=1, max=10_000)
    batch_size: int = opt(64, "images per step (on each process under DDP)", min=1, max=4096)
    lr: float = opt(1e-3, "peak AdamW learning rate", min=0.0, max=1.0)
    patience: int = opt(5, "stop after this many evaluations without a better val loss (0: never)", min=0)
    data: str = opt("", "labels.csv (or its folder) in the WikiArt layout; empty: a synthetic set is drawn", path=True)
    image_root: str = opt("", "folder the CSV's paths are relative to (default: the CSV's folder)", path=True)
    synthetic_n: int = opt(2000, "images of the synthetic set when --data is empty", min=10, max=1_000_000)
    backbone: str = opt("resnet18", "torchvision backbone (resnet18, resnet50, mobilenet_v3_small, ...)")
    pretrained: bool = opt(False, "start from ImageNet weights (needs them downloadable or cached)")
    image_size: int = opt(64, "images are resized and centre-cropped to this side", min=16, max=1024)
    weight_decay: float = opt(1e-4, "AdamW weight decay", min=0.0, max=1.0)
    val_fraction: float = opt(0.15, "share of images held out for validation", min=0.01, max=0.9)
    stream: bool = opt(False, "decode images per batch instead of holding them in memory")
    channels_last: bool = opt(True, "channels-last memory format on CUDA")

    def validate(self) -> None:
        if self.data and not Path(self.data).expanduser().exists():
            raise NcanvasError(f"--data {self.data}: no such file or folder")


def preflight(cfg: ArtCNNConfig) -> None:
    """Checks that need torchvision, run by the CLI before a job is created (the dashboard, which must stay free
    of torch, leaves them to the job, which then fails with the same message)."""
    import difflib

    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)  # classification models only
    if cfg.backbone.lower() not in names:
        close = difflib.get_close_matches(cfg.backbone.lower(), names, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "e.g. resnet18, resnet50, mobilenet_v3_small"
        raise NcanvasError(f"--backbone {cfg.backbone!r}: unknown backbone; {hint}")


CONFIG = ArtCNNConfig


def _dataset(rt: JobRuntime, cfg: ArtCNNConfig) -> Any:
    from core.art.data import read_table
    from core.art.synthetic import write_dataset

    if cfg.data:
        return read_table(Path(cfg.data).expanduser(), cfg.image_root or None)
    target = rt.paths.ckpt_dir / "synthetic-art"
    if not (target / "labels.csv").is_file():
        print(f"[ncanvas] drawing {cfg.synthetic_n} synthetic paintings into {target}", flush=True)
        write_dataset(target, cfg.synthetic_n, seed=cfg.seed, size=cfg.image_size)
    return read_table(target / "labels.csv")


def _batch_images(table: Any, images: Any, idx: Any, size: int) -> Any:
    from core.art.data import load_images

    if images is not None:
        return images[idx]
    return load_images([table.paths[i] for i in idx.tolist()], size)


def evaluate(model: Any, table: Any, images: Any, idx: Any, cfg: ArtCNNConfig, device: Any) -> dict[str, float]:
    """Val loss, per-head accuracy and top-5 (missing labels ignored), and their means over the labelled heads."""
    import torch

    from core.art.data import normalize
    from core.art.labels import HEADS
    from core.art.model import masked_loss

    model.eval()
    sums = {"loss": 0.0, "n": 0}
    hits = {f"{k}_{h}": 0 for h in HEADS for k in ("acc", "top5")}
    counts = {h: 0 for h in HEADS}
    with torch.no_grad():
        for start in range(0, len(idx), 256):
            b = idx[start:start + 256]
            x = normalize(_batch_images(table, images, b, cfg.image_size).to(device))
            y = table.labels[b].to(device)
            out = model(x)
            sums["loss"] += masked_loss(out, y).item() * len(b)
            sums["n"] += len(b)
            for i, h in enumerate(HEADS):
                mask = y[:, i] >= 0
                if mask.any():
                    logits, target = out[h][mask], y[mask, i]
                    top = logits.topk(min(5, logits.shape[1]), dim=1).indices
                    hits[f"acc_{h}"] += (top[:, 0] == target).sum().item()
                    hits[f"top5_{h}"] += (top == target[:, None]).any(1).sum().item()
                    counts[h] += int(mask.sum())
    model.train()
    res = {"loss": sums["loss"] / max(1, sums["n"])}
    labelled = [h for h in HEADS if counts[h]]  # a head with no label in the split has no accuracy (not 0 %)
    for h in labelled:
        res[f"acc_{h}"], res[f"top5_{h}"] = hits[f"acc_{h}"] / counts[h], hits[f"top5_{h}"] / counts[h]
    if labelled:
        res["acc"] = sum(res[f"acc_{h}"] for h in labelled) / len(labelled)
        res["top5"] = sum(res[f"top5_{h}"] for h in labelled) / len(labelled)
    return res


class ArtTask(Task):
    """Three heads on a torchvision backbone; images decoded once into memory (or per batch with ``--stream``).
    The batch order of epoch ``e`` and each step's augmentation are seeded by (seed, e) and (seed, step), so a
    resumed run replays them exactly."""

    kind = "artcnn"

    def setup(self, rt: JobRuntime, ckpt: dict[str, Any] | None) -> None:
        import torch

        from core.art.data import load_images, split_indices
        from core.art.model import ArtClassifier, ArtConfig

        cfg = self.cfg
        self.device = rt.device
        self.table = _dataset(rt, cfg)
        self.train_idx, self.val_idx = split_indices(len(self.table.paths), cfg.val_fraction, cfg.seed)
        self.images = None if cfg.stream else load_images(self.table.paths, cfg.image_size)
        if self.images is not None and self.device.type == "cuda":
            self.images = self.images.to(self.device)
        model = ArtClassifier(ArtConfig(cfg.backbone), pretrained=cfg.pretrained and ckpt is None)
        if rt.is_main:
            print(f"[ncanvas] backbone {cfg.backbone}: {model.init_note}; {len(self.train_idx)} train / "
                  f"{len(self.val_idx)} val images", flush=True)
        self.channels_last = self.device.type == "cuda" and cfg.channels_last
        model.to(self.device)
        self.model = model.to(memory_format=torch.channels_last) if self.channels_last else model

    def optimizers(self, total_steps: int) -> tuple[Any, Any]:
        import torch

        cfg = self.cfg
        opt_ = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        return opt_, torch.optim.lr_scheduler.OneCycleLR(opt_, max_lr=cfg.lr, total_steps=max(total_steps, 2),
                                                         pct_start=0.15)

    def epoch_batches(self, epoch: int, batch_size: int) -> list[Any]:
        import torch

        g = torch.Generator().manual_seed(self.cfg.seed * 7919 + epoch)
        perm = self.train_idx[torch.randperm(len(self.train_idx), generator=g)]
        return [perm[i:i + batch_size] for i in range(0, len(perm), batch_size)]

    def loss(self, model: Any, idx: Any, step: int) -> Any:
        import torch

        from core.art.data import augment, normalize
        from core.art.model import masked_loss

        gb = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step - 1)  # augmentation replays on resume
        x = augment(_batch_images(self.table, self.images, idx, self.cfg.image_size).to(self.device), gb)
        x = normalize(x.clamp(0, 255))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return masked_loss(model(x), self.table.labels[idx].to(self.device))

    def evaluate(self, autocast: Any) -> Evaluation:
        with autocast():
            val = evaluate(self.model, self.table, self.images, self.val_idx, self.cfg, self.device)
        return Evaluation({"val": val})

    def describe(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        from core.art.data import MEAN, STD
        from core.art.labels import LABELS

        cfg = self.cfg
        config = dict(to_dict(cfg), labels={h: list(v) for h, v in LABELS.items()}, mean=list(MEAN), std=list(STD))
        return f"art-{cfg.backbone}", config, {}


def train(rt: JobRuntime, cfg: ArtCNNConfig) -> None:
    """Train under ``rt`` in this process (the entry point below, and tests)."""
    from jobs.loop import fit

    fit(rt, ArtTask(cfg))


if __name__ == "__main__":
    from jobs.loop import entry

    entry(CONFIG, ArtTask)
