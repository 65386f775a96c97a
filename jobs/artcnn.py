"""Job kind ``artcnn``: the multi-head art classifier (artist / style / genre) on a WikiArt-layout set.

Loss is the sum of the three cross-entropies with missing labels masked. Per-head accuracy and top-5 go into the
metrics; checkpoints carry the label names, image size and normalisation, so inference needs nothing else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import NcanvasError
from jobs.config import opt


@dataclass
class ArtCNNConfig:
    data: str = opt("", "labels.csv (or its folder) in the WikiArt layout; empty: a synthetic set is drawn", path=True)
    image_root: str = opt("", "folder the CSV's paths are relative to (default: the CSV's folder)", path=True)
    synthetic_n: int = opt(2000, "images of the synthetic set when --data is empty", min=10, max=1_000_000)
    backbone: str = opt("resnet18", "torchvision backbone (resnet18, resnet50, mobilenet_v3_small, ...)")
    pretrained: bool = opt(False, "start from ImageNet weights (needs them downloadable or cached)")
    image_size: int = opt(64, "images are resized and centre-cropped to this side", min=16, max=1024)
    epochs: int = opt(10, "passes over the training set", min=1, max=10_000)
    batch_size: int = opt(64, "images per step", min=1, max=4096)
    lr: float = opt(1e-3, "AdamW learning rate", min=0.0, max=1.0)
    weight_decay: float = opt(1e-4, "AdamW weight decay", min=0.0, max=1.0)
    val_fraction: float = opt(0.15, "share of images held out for validation", min=0.01, max=0.9)
    patience: int = opt(5, "stop after this many epochs without a better val loss (0: never)", min=0)
    stream: bool = opt(False, "decode images per batch instead of holding them in memory")
    amp: bool = opt(True, "mixed precision on CUDA (bf16 where supported)")
    channels_last: bool = opt(True, "channels-last memory format on CUDA")
    seed: int = opt(0, "random seed", min=0)

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
        raise NcanvasError(f"unknown backbone {cfg.backbone!r}; {hint}")


CONFIG = ArtCNNConfig


def _dataset(rt: Any, cfg: ArtCNNConfig) -> Any:
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


def _checkpoint(cfg: ArtCNNConfig, model: Any, opt_: Any, sched: Any, scaler: Any, step: int, epoch: int,
                batch: int, best: float | None, bad_epochs: int, metrics: dict[str, Any]) -> dict[str, Any]:
    from core.art.data import MEAN, STD
    from core.art.labels import LABELS
    from core.checkpoint import make_checkpoint
    from jobs.config import to_dict

    config = dict(to_dict(cfg), labels={h: list(v) for h, v in LABELS.items()}, mean=list(MEAN), std=list(STD))
    return make_checkpoint(kind="artcnn", arch=f"art-{cfg.backbone}", config=config, model=model.state_dict(),
                           optimizer=opt_.state_dict(), scheduler=sched.state_dict(),
                           scaler=scaler.state_dict() if scaler is not None else None, step=step, epoch=epoch,
                           batch_in_epoch=batch, best_metric=best, metrics=metrics,
                           extra={"bad_epochs": bad_epochs})


def train(rt: Any, cfg: ArtCNNConfig) -> None:
    import torch

    from core.amp import native_bf16
    from core.art.data import augment, load_images, normalize, split_indices
    from core.art.model import ArtClassifier, ArtConfig, masked_loss
    from core.checkpoint import load_model_state, set_rng_state
    from core.curves import plot_curves

    rt.seed_everything(cfg.seed)
    device = rt.device
    table = _dataset(rt, cfg)
    train_idx, val_idx = split_indices(len(table.paths), cfg.val_fraction, cfg.seed)
    images = None if cfg.stream else load_images(table.paths, cfg.image_size)
    if images is not None and device.type == "cuda":
        images = images.to(device)
    model = ArtClassifier(ArtConfig(cfg.backbone), pretrained=cfg.pretrained)
    print(f"[ncanvas] backbone {cfg.backbone}: {model.init_note}; {len(train_idx)} train / {len(val_idx)} val images",
          flush=True)
    model.to(device)
    cuda = device.type == "cuda"
    if cuda and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    amp_dtype = torch.bfloat16 if cuda and native_bf16() else torch.float16  # emulated bf16 is slower than fp16
    use_amp = cfg.amp and cuda
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16) if cuda else None
    opt_ = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = (len(train_idx) + cfg.batch_size - 1) // cfg.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt_, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                pct_start=0.15)
    step, epoch, batch0, best, bad = 0, 0, 0, None, 0
    if (ck := rt.resume_checkpoint()) is not None:
        load_model_state(model, ck, rt.paths.latest)  # a mismatched file: one line, not torch's key dump
        opt_.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        if scaler is not None and ck["scaler"]:
            scaler.load_state_dict(ck["scaler"])
        set_rng_state(ck["rng"])
        step, epoch, batch0, best = ck["step"], ck["epoch"], ck["batch_in_epoch"], ck["best_metric"]
        bad = ck["extra"].get("bad_epochs", 0)
    total = cfg.epochs * steps_per_epoch
    if step == 0:
        rt.save(_checkpoint(cfg, model, opt_, sched, scaler, 0, 0, 0, None, 0, {}), "epoch_0.pt")
    while epoch < cfg.epochs:
        g = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
        perm = train_idx[torch.randperm(len(train_idx), generator=g)]
        t0, seen = time.perf_counter(), 0
        for b in range(batch0, steps_per_epoch):
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            gb = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # augmentation replays on resume
            x = augment(_batch_images(table, images, idx, cfg.image_size).to(device), gb)
            x = normalize(x.clamp(0, 255))
            if cuda and cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = table.labels[idx].to(device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss = masked_loss(model(x), y)
            opt_.zero_grad(set_to_none=True)
            if scaler is not None and scaler.is_enabled():
                scaler.scale(loss).backward()
                scaler.step(opt_)
                scaler.update()
            else:
                loss.backward()
                opt_.step()
            lr = sched.get_last_lr()[0]  # the rate this step used
            sched.step()
            step += 1
            seen += len(idx)
            img_s = seen / max(time.perf_counter() - t0, 1e-9)
            rt.log(step=step, epoch=epoch, split="train", loss=loss.item(), lr=lr, img_s=img_s)
            rt.progress(step=step, total_steps=total, epoch=epoch, total_epochs=cfg.epochs, loss=loss.item(),
                        img_s=img_s)
            if rt.should_stop():
                rt.save(_checkpoint(cfg, model, opt_, sched, scaler, step, epoch, b + 1, best, bad, {}), "latest.pt")
                return
        epoch, batch0 = epoch + 1, 0
        val = evaluate(model, table, images, val_idx, cfg, device)
        rt.log(step=step, epoch=epoch, split="val", **val)
        rt.progress(step=step, total_steps=total, epoch=epoch, total_epochs=cfg.epochs, force=True,
                    val_loss=val["loss"], val_acc=val.get("acc"))
        improved = best is None or val["loss"] < best
        best, bad = (val["loss"], 0) if improved else (best, bad + 1)
        rt.event("epoch_end", epoch=epoch, step=step, **{f"val_{k}": v for k, v in val.items()})
        ck = _checkpoint(cfg, model, opt_, sched, scaler, step, epoch, 0, best, bad, val)
        rt.save(ck, "latest.pt", *(["best_model.pt"] if improved else []))
        plot_curves(rt.paths.metrics, rt.paths.curves_png, {"loss": ["train/loss", "val/loss"],
                                                            "val accuracy (mean of heads)": ["val/acc", "val/top5"]})
        if cfg.patience and bad >= cfg.patience:
            print(f"[ncanvas] early stop: no better val loss for {bad} epochs", flush=True)
            break


if __name__ == "__main__":
    from jobs.runtime import run_job

    run_job(CONFIG, train)
