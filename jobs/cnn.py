"""Job kind ``cnn``: a small CNN on MNIST / Fashion-MNIST / CIFAR-10, trained from in-memory tensors.

Light at module scope (no torch). Exact resume: the order of epoch ``e`` is ``randperm`` from a generator
seeded with (seed, e), and every checkpoint records the position inside the epoch; augmentation and dropout
draw from the global torch RNG, which the checkpoint restores.

Outputs (``checkpoints/<id>/``): ``epoch_0.pt`` (untrained), ``latest.pt``, ``best_model.pt`` (best val
accuracy), ``epoch_<n>.pt`` with ``--save-every-epoch``, ``training_curves.png``, ``misclassified.png`` and
``misclassified.json``. Checkpoints carry ``extra["vision"]`` so inference rebuilds the model from the file alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from core.errors import NcanvasError
from jobs.config import opt

MODEL_CHOICES = ("simplecnn", "lenet-demo", "simplenet")  # = core.vision.models.MODEL_NAMES (kept light here)
DATASET_CHOICES = ("mnist", "fashion-mnist", "cifar10")
CURVE_PANELS = {"loss": ["train/loss", "val/loss", "test/loss"], "accuracy": ["val/acc", "test/acc"]}


@dataclass
class CnnConfig:
    model: str = opt("simplecnn", "architecture", choices=MODEL_CHOICES)
    dataset: str = opt("mnist", "dataset", choices=DATASET_CHOICES)
    data_dir: str = opt("", "folder with the dataset files (default: $NCANVAS_DATA_DIR or <workspace>/data)",
                        path=True)
    epochs: int = opt(3, "passes over the training split", min=1, max=10_000)
    batch_size: int = opt(128, "images per step", min=1, max=65_536)
    lr: float = opt(0.01, "peak learning rate", min=0.0, max=10.0)
    optimizer: str = opt("adam", "optimizer", choices=("adam", "adamw", "sgd"))
    scheduler: str = opt("onecycle", "learning-rate schedule over the whole run", choices=("onecycle", "cosine", "none"))
    weight_decay: float = opt(0.0, "weight decay", min=0.0, max=1.0)
    val_fraction: float = opt(0.1, "share of the training split held out for validation (0: select on test)",
                              min=0.0, max=0.9)
    patience: int = opt(0, "early stopping: epochs without val-accuracy gain before stopping (0: off)", min=0)
    save_every_epoch: bool = opt(False, "also keep epoch_<n>.pt after every epoch")
    amp: bool = opt(True, "mixed precision (float16 autocast + grad scaling) when on a GPU")
    augment: str = opt("auto", "crop+flip augmentation (auto: on for cifar10)", choices=("auto", "on", "off"))
    seed: int = opt(0, "random seed (data split, order, init)", min=0)
    limit_train: int = opt(0, "use only the first N training images (0: all)", min=0)
    limit_test: int = opt(0, "use only the first N test images (0: all)", min=0)
    gallery_size: int = opt(36, "misclassified test images in misclassified.png", min=0, max=1024)
    cpu_threads: int = opt(0, "torch CPU threads (0: torch's default; 1 is steadier on a busy machine)", min=0, max=256)
    num_workers: int = opt(0, "unused: data is held in memory as tensors (kept for config compatibility)", min=0)

    def validate(self) -> None:
        if self.limit_train and self.val_fraction and int(round(self.limit_train * self.val_fraction)) < 1:
            raise NcanvasError("--limit-train is too small to hold out a validation split; raise it or set "
                               "--val-fraction 0")


CONFIG = CnnConfig


@dataclass
class _State:
    step: int = 0
    epoch: int = 0  # epochs completed
    batch: int = 0  # batches of the current epoch already done
    best: float | None = None  # best selection accuracy so far
    bad_epochs: int = 0


def _load_data(rt: Any, cfg: CnnConfig) -> tuple[Any, Any, Any, Any]:
    from core.vision import data as vd

    info = vd.get_info(cfg.dataset)
    home = rt.paths.log_dir.parent.parent
    root = vd.resolve_data_dir(cfg.data_dir or None, home=home)
    full, test = vd.load_split(cfg.dataset, "train", root), vd.load_split(cfg.dataset, "test", root)
    if cfg.limit_train:
        full = vd.TensorData(full.x[:cfg.limit_train], full.y[:cfg.limit_train])
    if cfg.limit_test:
        test = vd.TensorData(test.x[:cfg.limit_test], test.y[:cfg.limit_test])
    train, val = vd.split_train_val(full, cfg.val_fraction, cfg.seed)
    dev = rt.device
    return info, train.to(dev), (val.to(dev) if len(val) else None), test.to(dev)


def vision_meta(cfg: CnnConfig, info: Any, samples: Any) -> dict[str, Any]:
    """What inference needs to rebuild model and preprocessing from a checkpoint alone."""
    return {"dataset": info.name, "in_channels": info.in_channels, "num_classes": info.num_classes,
            "image_size": info.image_size, "mean": list(info.mean), "std": list(info.std),
            "class_names": list(info.class_names), "model": cfg.model,
            # clone: a slice is a view, and torch.save would write the whole test set under it
            "samples": samples[0].cpu().clone(), "sample_labels": samples[1].cpu().clone()}


def _make_optim(cfg: CnnConfig, model: Any, total_steps: int) -> tuple[Any, Any]:
    import torch

    params = model.parameters()
    opt_: Any
    sched: Any
    if cfg.optimizer == "sgd":
        opt_ = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    elif cfg.optimizer == "adamw":
        opt_ = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt_ = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt_, max_lr=cfg.lr, total_steps=max(total_steps, 2))
    elif cfg.scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt_, T_max=max(total_steps, 1))
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt_, lambda _s: 1.0)
    return opt_, sched


class _Trainer:
    """Holds the training objects so the loop, checkpoints and evaluation stay small functions."""

    def __init__(self, rt: Any, cfg: CnnConfig) -> None:
        import torch

        from core.vision.models import build_model

        self.rt, self.cfg = rt, cfg
        self.info, self.train, self.val, self.test = _load_data(rt, cfg)
        self.model = build_model(cfg.model, self.info.in_channels, self.info.num_classes,
                                 self.info.image_size).to(rt.device)
        self.n_batches = -(-len(self.train) // cfg.batch_size)
        self.total_steps = cfg.epochs * self.n_batches
        self.opt, self.sched = _make_optim(cfg, self.model, self.total_steps)
        self.amp = bool(cfg.amp and rt.device.type == "cuda")
        if rt.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest kernels
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.augment = cfg.augment == "on" or (cfg.augment == "auto" and cfg.dataset == "cifar10")
        self.meta = vision_meta(cfg, self.info, (self.test.x[:8], self.test.y[:8]))
        self.st = _State()

    def checkpoint(self) -> dict[str, Any]:
        from core.checkpoint import make_checkpoint
        from jobs.config import to_dict

        st = self.st
        return make_checkpoint(
            kind="cnn", arch=self.cfg.model, config=to_dict(self.cfg), model=self.model.state_dict(),
            step=st.step, epoch=st.epoch, batch_in_epoch=st.batch, optimizer=self.opt.state_dict(),
            scheduler=self.sched.state_dict(), scaler=self.scaler.state_dict() if self.amp else None,
            best_metric=st.best, extra={"vision": self.meta, "bad_epochs": st.bad_epochs})

    def restore(self, ck: dict[str, Any]) -> None:
        from core.checkpoint import load_model_state, set_rng_state

        load_model_state(self.model, ck, self.rt.paths.latest)
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        if self.amp and ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
        set_rng_state(ck["rng"])
        self.st = _State(ck["step"], ck["epoch"], ck["batch_in_epoch"], ck["best_metric"],
                         int(ck["extra"].get("bad_epochs", 0)))

    def step(self, idx: Any) -> float:
        import torch
        import torch.nn.functional as F

        from core.vision.data import augment_crop_flip, normalize

        x = self.train.x[idx]
        if self.augment:
            x = augment_crop_flip(x)
        x, y = normalize(x, self.info), self.train.y[idx]
        with torch.autocast(x.device.type, dtype=torch.float16, enabled=self.amp):
            loss = F.cross_entropy(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        return float(loss.item())

    def run_epoch(self) -> bool:
        """Train the rest of the current epoch; False when a stop was requested (latest.pt saved)."""
        import torch

        cfg, st, rt = self.cfg, self.st, self.rt
        perm = torch.randperm(len(self.train), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + st.epoch))
        perm = perm.to(self.train.x.device)
        self.model.train()
        for b in range(st.batch, self.n_batches):
            t0 = time.perf_counter()
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            lr = self.opt.param_groups[0]["lr"]  # the rate this step uses (the scheduler moves on inside step)
            loss = self.step(idx)
            st.step, st.batch = st.step + 1, b + 1
            img_s = len(idx) / max(time.perf_counter() - t0, 1e-9)
            rt.log(step=st.step, epoch=st.epoch, split="train", loss=loss, lr=lr, img_s=round(img_s, 1))
            rt.progress(step=st.step, total_steps=self.total_steps, epoch=st.epoch, total_epochs=cfg.epochs,
                        loss=round(loss, 5))
            if rt.should_stop():
                rt.save(self.checkpoint(), "latest.pt")
                return False
        return True

    def end_epoch(self) -> bool:
        """Evaluate, log, checkpoint. Returns False when early stopping triggers."""
        from core.curves import plot_curves
        from core.vision.evaluate import evaluate

        cfg, st, rt = self.cfg, self.st, self.rt
        st.epoch, st.batch = st.epoch + 1, 0
        fields: dict[str, Any] = {}
        if self.val is not None:
            v = evaluate(self.model, self.val, self.info, amp=self.amp)
            rt.log(step=st.step, epoch=st.epoch, split="val", loss=v.loss, acc=v.acc)
            fields.update(val_loss=v.loss, val_acc=v.acc)
        t = evaluate(self.model, self.test, self.info, amp=self.amp)
        rt.log(step=st.step, epoch=st.epoch, split="test", loss=t.loss, acc=t.acc)
        fields.update(test_loss=t.loss, test_acc=t.acc)
        score = fields.get("val_acc", t.acc)
        improved = st.best is None or score > st.best
        st.best = score if improved else st.best
        st.bad_epochs = 0 if improved else st.bad_epochs + 1
        rt.event("epoch_end", epoch=st.epoch, step=st.step, **fields, best=improved,
                 confusion=t.confusion(self.test.y, self.info.num_classes))
        names = ["latest.pt"] + (["best_model.pt"] if improved else [])
        names += [f"epoch_{st.epoch}.pt"] if cfg.save_every_epoch else []
        rt.save(self.checkpoint(), *names)
        rt.progress(step=st.step, total_steps=self.total_steps, epoch=st.epoch, total_epochs=cfg.epochs,
                    force=True, **{k: round(v, 5) for k, v in fields.items()})
        plot_curves(rt.paths.metrics, rt.paths.curves_png, CURVE_PANELS, train_ema=0.9)
        if cfg.patience and st.bad_epochs >= cfg.patience:
            rt.event("early_stop", epoch=st.epoch, step=st.step, patience=cfg.patience)
            return False
        return True

    def gallery(self) -> None:
        """Misclassified test images of the best model."""
        from core.checkpoint import load_checkpoint, load_model_state
        from core.vision.evaluate import evaluate, misclassified_gallery

        if self.rt.paths.best.is_file():
            load_model_state(self.model, load_checkpoint(self.rt.paths.best, kind="cnn"), self.rt.paths.best)
        res = evaluate(self.model, self.test, self.info, amp=self.amp)
        d = self.rt.paths.ckpt_dir
        wrong = misclassified_gallery(self.test, res.preds, self.info.class_names, d / "misclassified.png",
                                      d / "misclassified.json", limit=self.cfg.gallery_size)
        self.rt.event("gallery", step=self.st.step, misclassified=wrong, total=len(self.test), best_test_acc=res.acc)


def train(rt: Any, cfg: CnnConfig) -> None:
    if cfg.cpu_threads:
        import torch

        torch.set_num_threads(cfg.cpu_threads)
    rt.seed_everything(cfg.seed)
    tr = _Trainer(rt, cfg)
    ck = rt.resume_checkpoint()
    if ck is not None:
        tr.restore(ck)
    else:
        rt.save(tr.checkpoint(), "epoch_0.pt")
    while tr.st.epoch < cfg.epochs:
        if not tr.run_epoch() or not tr.end_epoch() or rt.should_stop():
            break
    if rt.should_stop():
        return
    tr.gallery()
    rt.progress(step=tr.st.step, total_steps=tr.total_steps, epoch=tr.st.epoch, total_epochs=cfg.epochs, force=True)


if __name__ == "__main__":
    from jobs.runtime import run_job

    run_job(CONFIG, train)
