"""Shared helpers for the vision tests: tiny synthetic dataset files and a real in-process job runtime."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np


def write_idx(path: Path, arr: np.ndarray, gz: bool = True) -> Path:
    """An IDX file (uint8) exactly as MNIST ships it."""
    arr = np.asarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    data = header + arr.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def make_idx_dataset(root: Path, n_train: int = 64, n_test: int = 32, gz: bool = True, seed: int = 0) -> Path:
    """MNIST-format files whose class is readable from the image (a bright bar at row 2*label)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, lab in enumerate(y):
            x[i, 2 * lab + 4: 2 * lab + 6, 4:24] = 255
        write_idx(root / f"{split}-images-idx3-ubyte", x, gz)
        write_idx(root / f"{split}-labels-idx1-ubyte", y, gz)
    return root


def make_cifar_dataset(root: Path, per_batch: int = 20, seed: int = 0) -> Path:
    """CIFAR-10 python batches (5 train + test) with random images."""
    rng = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8),
                 b"labels": rng.integers(0, 10, per_batch).tolist()}
        with open(d / name, "wb") as f:
            pickle.dump(batch, f)
    return root


def make_runtime(ws: Any, job_id: str, values: dict[str, Any], resuming: bool = False, stop_at_step: int | None = None,
                 kind: str = "cnn", gpu: str = "cpu") -> Any:
    """A real :class:`jobs.runtime.JobRuntime` for an in-process ``train()`` call of job ``kind`` (no subprocess,
    no lock), on ``gpu`` ("cpu" or a CUDA index as the supervisor records it).

    ``stop_at_step`` simulates SIGTERM right after that training step was logged.
    """
    import importlib

    from core.runrec import JobRecord, read_record, write_record
    from jobs.config import build_config, to_dict
    from jobs.runtime import JobRuntime

    cfg = build_config(importlib.import_module(f"jobs.{kind}").CONFIG, values)
    paths = ws.run(job_id).make()
    if paths.job_json.is_file():
        rec = read_record(paths.job_json)
    else:
        rec = JobRecord(id=job_id, kind=kind, config=to_dict(cfg), gpu=gpu)
        write_record(paths.job_json, rec)
    rt = JobRuntime(paths, rec, cfg, resuming=resuming)
    rt._load_resume()
    if stop_at_step is not None:
        log = rt.log

        def log_and_maybe_stop(**row: Any) -> None:
            log(**row)
            if row.get("split") == "train" and row.get("step") == stop_at_step:
                rt.request_stop()

        rt.log = log_and_maybe_stop  # type: ignore[method-assign]
    return rt


def run_train(ws: Any, job_id: str, values: dict[str, Any], **kw: Any) -> Any:
    from jobs.cnn import train

    # One thread: with two workers on two cores, OpenMP's barriers stall whenever a thread is descheduled.
    rt = make_runtime(ws, job_id, {"cpu_threads": 1, **values}, **kw)
    try:
        train(rt, rt.config)
    finally:
        rt.metrics.close()
    return rt


def run_art_train(ws: Any, job_id: str, values: dict[str, Any], **kw: Any) -> Any:
    """The ``artcnn`` job's ``train()`` in this process, on one CPU thread (it has no --cpu-threads option)."""
    import torch

    from jobs.artcnn import train

    rt = make_runtime(ws, job_id, values, kind="artcnn", **kw)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(rt, rt.config)
    finally:
        torch.set_num_threads(threads)
        rt.metrics.close()
    return rt


def make_art_set(root: Path, n: int = 48, size: int = 16, seed: int = 0) -> Path:
    """A tiny synthetic art set in the WikiArt layout (``labels.csv`` + ``images/``); returns the CSV path."""
    from core.art.synthetic import write_dataset

    return write_dataset(root, n, seed=seed, size=size)
