"""Job kind ``cnn``: a small CNN on MNIST / Fashion-MNIST / CIFAR-10, trained from in-memory tensors.

Light at module scope (no torch). Exact resume: the order of epoch ``e`` is ``randperm`` from a generator
seeded with (seed, e), and every checkpoint records the position inside the epoch; augmentation and dropout
draw from the global torch RNG, which the checkpoint restores.

Outputs (``checkpoints/<id>/``): ``epoch_0.pt`` (untrained), ``latest.pt``, ``best_model.pt`` (best val
accuracy), ``epoch_<n>.pt`` with ``--save-every-epoch``, ``training_curves.png``, ``misclassified.png`` and
``misclassified.json``. Checkpoints carry ``extra["vision"]`` so inference rebuilds the model from the file alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import NcanvasError
from jobs.config import LoopConfig, opt, to_dict
from jobs.task import Evaluation, Task

if TYPE_CHECKING:
    from jobs.runtime import JobRuntime

MODEL_CHOICES = ("simplecnn", "lenet-demo", "simplenet")  # = core.vision.models.MODEL_NAMES (kept light here)
DATASET_CHOICES = ("mnist", "fashion-mnist", "cifar10")


@dataclass
class CnnConfig(LoopConfig):
    epochs: int = opt(3, "passes over the training split", min=1, max=10_000)
    batch_size: int = opt(128, "images per step (on each process under DDP)", min=1, max=65_536)
    lr: float = opt(0.01, "peak learning rate", min=0.0, max=10.0)
    model: str = opt("simplecnn", "architecture", choices=MODEL_CHOICES)
    dataset: str = opt("mnist", "dataset", choices=DATASET_CHOICES)
    data_dir: str = opt("", "folder with the dataset files (default: $NCANVAS_DATA_DIR or <workspace>/data)",
                        path=True)
    optimizer: str = opt("adam", "optimizer", choices=("adam", "adamw", "sgd"))
    scheduler: str = opt("onecycle", "learning-rate schedule over the whole run", choices=("onecycle", "cosine", "none"))
    weight_decay: float = opt(0.0, "weight decay", min=0.0, max=1.0)
    val_fraction: float = opt(0.1, "share of the training split held out for validation (0: select on test)",
                              min=0.0, max=0.9)
    augment: str = opt("auto", "crop+flip augmentation (auto: on for cifar10)", choices=("auto", "on", "off"))
    limit_train: int = opt(0, "use only the first N training images (0: all)", min=0)
    limit_test: int = opt(0, "use only the first N test images (0: all)", min=0)
    gallery_size: int = opt(36, "misclassified test images in misclassified.png", min=0, max=1024)
    num_workers: int = opt(0, "unused: data is held in memory as tensors (kept for config compatibility)", min=0)

    def validate(self) -> None:
        if self.limit_train and self.val_fraction and int(round(self.limit_train * self.val_fraction)) < 1:
            raise NcanvasError("--limit-train is too small to hold out a validation split; raise it or set "
                               "--val-fraction 0")


CONFIG = CnnConfig


def _load_data(rt: JobRuntime, cfg: CnnConfig) -> tuple[Any, Any, Any, Any]:
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


class CnnTask(Task):
    """Images and labels held as tensors on the device; the order of epoch ``e`` is ``randperm`` from a generator
    seeded with (seed, e), augmentation and dropout draw from the torch RNG (restored on resume)."""

    kind = "cnn"
    select_key = "acc"
    select_higher = True

    def setup(self, rt: JobRuntime, ckpt: dict[str, Any] | None) -> None:
        import torch

        from core.vision.models import build_model

        cfg = self.cfg
        self.info, self.train, self.val, self.test = _load_data(rt, cfg)
        self.model = build_model(cfg.model, self.info.in_channels, self.info.num_classes,
                                 self.info.image_size).to(rt.device)
        if rt.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick the fastest kernels
        self.augment = cfg.augment == "on" or (cfg.augment == "auto" and cfg.dataset == "cifar10")
        self.meta = vision_meta(cfg, self.info, (self.test.x[:8], self.test.y[:8]))
        self.autocast: Any = None
        self.paths = rt.paths

    def optimizers(self, total_steps: int) -> tuple[Any, Any]:
        return _make_optim(self.cfg, self.model, total_steps)

    def epoch_batches(self, epoch: int, batch_size: int) -> list[Any]:
        import torch

        g = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        perm = torch.randperm(len(self.train), generator=g).to(self.train.x.device)
        return [perm[i:i + batch_size] for i in range(0, len(perm), batch_size)]

    def loss(self, model: Any, idx: Any, step: int) -> Any:
        import torch.nn.functional as F

        from core.vision.data import augment_crop_flip, normalize

        x = self.train.x[idx]
        if self.augment:
            x = augment_crop_flip(x)
        return F.cross_entropy(model(normalize(x, self.info)), self.train.y[idx])

    def evaluate(self, autocast: Any) -> Evaluation:
        from core.vision.evaluate import evaluate

        self.autocast = autocast
        splits: dict[str, dict[str, float]] = {}
        if self.val is not None:
            v = evaluate(self.model, self.val, self.info, autocast=autocast)
            splits["val"] = {"loss": v.loss, "acc": v.acc}
        t = evaluate(self.model, self.test, self.info, autocast=autocast)
        splits["test"] = {"loss": t.loss, "acc": t.acc}
        return Evaluation(splits, {"confusion": t.confusion(self.test.y, self.info.num_classes)})

    def describe(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        return self.cfg.model, to_dict(self.cfg), {"vision": self.meta}

    def finish(self, loop: Any) -> None:
        """The gallery of misclassified test images, by the best weights."""
        from core.vision.evaluate import evaluate, misclassified_gallery

        if not loop.rt.is_main:
            return
        loop.load_best()
        res = evaluate(self.model, self.test, self.info, autocast=self.autocast)
        d = self.paths.ckpt_dir
        wrong = misclassified_gallery(self.test, res.preds, self.info.class_names, d / "misclassified.png",
                                      d / "misclassified.json", limit=self.cfg.gallery_size)
        loop.rt.event("gallery", step=loop.state.step, misclassified=wrong, total=len(self.test),
                      best_test_acc=res.acc)


def train(rt: JobRuntime, cfg: CnnConfig) -> None:
    """Train under ``rt`` in this process (the entry point below, and tests)."""
    from jobs.loop import fit

    fit(rt, CnnTask(cfg))


if __name__ == "__main__":
    from jobs.loop import entry

    entry(CONFIG, CnnTask)
