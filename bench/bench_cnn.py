"""simplecnn on real MNIST (CPU): ncanvas's in-memory tensor path vs torchvision's DataLoader path.

Both train the same model with the same optimizer, schedule, batch size, epochs and seed on the full 60k
training set and report the training wall time and the 10k test accuracy. Ours runs the real ``cnn`` job
(``jobs.cnn.train`` under the job runtime, metrics and checkpoints included); the peer is the textbook loop
over ``DataLoader(datasets.MNIST(transform=Compose([ToTensor(), Normalize])))``.

    python bench/bench_cnn.py --data-dir ../shared/data/mnist [--epochs 3] [--threads 0]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RAW = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def ours(data_dir: str, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    from core.metrics import iter_rows
    from core.paths import Workspace
    from core.runrec import JobRecord, write_record
    from jobs.cnn import CONFIG, train
    from jobs.config import build_config, to_dict
    from jobs.runtime import JobRuntime

    cfg = build_config(CONFIG, {"data_dir": data_dir, "epochs": args.epochs, "batch_size": args.batch_size,
                                "lr": args.lr, "val_fraction": 0.0, "seed": args.seed, "cpu_threads": args.threads})
    paths = Workspace(tmp / "ws").ensure().run("cnn-0001").make()
    rec = JobRecord(id="cnn-0001", kind="cnn", config=to_dict(cfg))
    write_record(paths.job_json, rec)
    rt = JobRuntime(paths, rec, cfg)
    t0 = time.time()
    train(rt, cfg)
    total = time.time() - t0
    rt.metrics.close()
    rows = list(iter_rows(paths.metrics))
    first = next(r["t"] for r in rows if r.get("split") == "train")
    last_end = [r for r in rows if r.get("event") == "epoch_end"][-1]
    train_s = sum(_train_spans(rows))
    return {"train_s": train_s, "wall_s": total, "first_step_to_last_eval_s": last_end["t"] - first,
            "test_acc": last_end["test_acc"]}


def _train_spans(rows: list[dict]) -> list[float]:
    """Per epoch: from its first train row to its last one (excludes evaluation and checkpointing)."""
    spans: dict[int, list[float]] = {}
    for r in rows:
        if r.get("split") == "train":
            spans.setdefault(r["epoch"], []).append(r["t"])
    return [max(ts) - min(ts) for ts in spans.values()]


def peer(data_dir: str, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from core.vision.models import build_model

    raw = tmp / "tv" / "MNIST" / "raw"  # torchvision reads the uncompressed files only
    raw.mkdir(parents=True)
    for name in RAW:
        with gzip.open(Path(data_dir) / f"{name}.gz") as src, open(raw / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_ds = datasets.MNIST(str(tmp / "tv"), train=True, download=False, transform=tf)
    test_ds = datasets.MNIST(str(tmp / "tv"), train=False, download=False, transform=tf)
    torch.manual_seed(args.seed)
    model = build_model("simplecnn")
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(train_ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * len(loader))
    t0 = time.time()
    for _ in range(args.epochs):
        model.train()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    train_s = time.time() - t0
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in DataLoader(test_ds, batch_size=1000):
            correct += int((model(x).argmax(1) == y).sum())
    return {"train_s": train_s, "wall_s": time.time() - t0, "test_acc": correct / len(test_ds)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=os.environ.get("NCANVAS_MNIST_DIR", str(ROOT.parent / "shared/data/mnist")))
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

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        a = ours(args.data_dir, args, Path(d))
        print(f"ours (in-memory tensors, cnn job): train {a['train_s']:.1f}s (job wall {a['wall_s']:.1f}s incl. "
              f"data load, eval, checkpoints), test acc {a['test_acc']:.2%}", flush=True)
        if args.skip_peer:
            return
        b = peer(args.data_dir, args, Path(d))
        print(f"peer (torchvision DataLoader, ToTensor+Normalize): train {b['train_s']:.1f}s, "
              f"test acc {b['test_acc']:.2%}", flush=True)
        print(f"speed-up (peer train time / ours): {b['train_s'] / a['train_s']:.2f}x")
        print(json.dumps({"ours": a, "peer": b, "threads": torch.get_num_threads(), "epochs": args.epochs}))


if __name__ == "__main__":
    main()
