"""A CNN on real MNIST: ncanvas's in-memory tensor path vs torchvision's DataLoader path, same model and schedule.

Both train the same model with the same optimizer, schedule, batch size, epochs and seed on the full 60k
training set and report the wall time of the training loop (data included: slicing and normalising our
in-memory batches, or the DataLoader's per-sample ToTensor+Normalize and collation; the one-time read of the
files excluded on both sides), the wall time of the whole run, and the 10k test accuracy. Ours runs the real
``cnn`` job (``jobs.cnn.train`` under the job runtime: per-epoch val/test evaluation, checkpoints, curves and
the gallery included in its wall time); the peer is the textbook loop over
``DataLoader(datasets.MNIST(transform=Compose([ToTensor(), Normalize])))``.

    python bench/bench_cnn.py [--data-dir ../shared/data/mnist] [--epochs 3] [--threads 0]
    python bench/bench_cnn.py --model simplenet --device cuda --epochs 3 --skip-peer   # the GPU figure (>= 99 %)
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RAW = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@contextlib.contextmanager
def _timed_epochs(spans: list[float]) -> Iterator[None]:
    """Time every ``_Trainer.run_epoch`` call of the cnn job: its training loop, batches included, nothing else."""
    from jobs.cnn import _Trainer

    real = _Trainer.run_epoch

    def run_epoch(self: Any) -> bool:
        if self.rt.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            return real(self)
        finally:
            if self.rt.device.type == "cuda":
                import torch

                torch.cuda.synchronize()
            spans.append(time.perf_counter() - t0)

    _Trainer.run_epoch = run_epoch  # type: ignore[method-assign]
    try:
        yield
    finally:
        _Trainer.run_epoch = real  # type: ignore[method-assign]


def ours(data_dir: str, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    from core.metrics import iter_rows
    from core.paths import Workspace
    from core.runrec import JobRecord, write_record
    from jobs.cnn import CONFIG, train
    from jobs.config import build_config, to_dict
    from jobs.runtime import JobRuntime

    cfg = build_config(CONFIG, {"data_dir": data_dir, "model": args.model, "epochs": args.epochs,
                                "batch_size": args.batch_size, "lr": args.lr, "val_fraction": 0.0, "seed": args.seed,
                                "cpu_threads": args.threads})
    paths = Workspace(tmp / "ws").ensure().run("cnn-0001").make()
    rec = JobRecord(id="cnn-0001", kind="cnn", config=to_dict(cfg), gpu="0" if args.device == "cuda" else "cpu")
    write_record(paths.job_json, rec)
    rt = JobRuntime(paths, rec, cfg)
    spans: list[float] = []
    t0 = time.perf_counter()
    with _timed_epochs(spans):
        train(rt, cfg)
    total = time.perf_counter() - t0
    rt.metrics.close()
    ends = [r for r in iter_rows(paths.metrics) if r.get("event") == "epoch_end"]
    return {"train_s": sum(spans), "wall_s": total, "test_acc": ends[-1]["test_acc"],
            "test_acc_per_epoch": [e["test_acc"] for e in ends]}


def _mnist_folder(data_dir: str, tmp: Path) -> Path:
    raw = tmp / "tv" / "MNIST" / "raw"  # torchvision reads the uncompressed files only
    raw.mkdir(parents=True)
    for name in RAW:
        with gzip.open(Path(data_dir) / f"{name}.gz") as src, open(raw / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return tmp / "tv"


def peer(data_dir: str, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from core.vision.models import build_model

    t_start = time.perf_counter()
    root = _mnist_folder(data_dir, tmp)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_ds = datasets.MNIST(str(root), train=True, download=False, transform=tf)
    test_ds = datasets.MNIST(str(root), train=False, download=False, transform=tf)
    dev = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = build_model(args.model).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(train_ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                        pin_memory=dev.type == "cuda")
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * len(loader))
    amp = dev.type == "cuda"  # as the job: float16 autocast + grad scaling on a GPU
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        for x, y in loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            with torch.autocast(dev.type, dtype=torch.float16, enabled=amp):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
    if amp:
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t0
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in DataLoader(test_ds, batch_size=1000):
            correct += int((model(x.to(dev)).argmax(1).cpu() == y).sum())
    return {"train_s": train_s, "wall_s": time.perf_counter() - t_start, "test_acc": correct / len(test_ds)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("NCANVAS_MNIST_DIR", str(ROOT.parent / "shared/data/mnist")))
    p.add_argument("--model", default="simplecnn", choices=("simplecnn", "lenet-demo", "simplenet"))
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers for the peer")
    p.add_argument("--skip-peer", action="store_true")
    args = p.parse_args()
    os.environ["NCANVAS_OFFLINE"] = "1"
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_cnn: --device cuda but torch sees no CUDA device")
    if args.threads:
        torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.model} on real MNIST, {args.epochs} epochs, batch {args.batch_size}, {where}", flush=True)
    with tempfile.TemporaryDirectory() as d:
        a = ours(args.data_dir, args, Path(d))
        print(f"ours (in-memory tensors, cnn job): training loop {a['train_s']:.1f}s, job wall {a['wall_s']:.1f}s "
              f"(incl. data load, eval, checkpoints, gallery), test acc {a['test_acc']:.2%}", flush=True)
        b = None if args.skip_peer else peer(args.data_dir, args, Path(d))
        if b is not None:
            print(f"peer (torchvision DataLoader, ToTensor+Normalize): training loop {b['train_s']:.1f}s, "
                  f"wall {b['wall_s']:.1f}s (incl. data load, test eval), test acc {b['test_acc']:.2%}", flush=True)
            print(f"speed-up of the training loop (peer / ours): {b['train_s'] / a['train_s']:.2f}x")
        print(json.dumps({"ours": a, "peer": b, "model": args.model, "device": args.device,
                          "threads": torch.get_num_threads(), "epochs": args.epochs}))


if __name__ == "__main__":
    main()
