"""Job kind ``demo``: a tiny, deterministic regression that really trains, logs and checkpoints.

For trying ncanvas out in seconds and for testing the supervisor with real processes. It follows the same
exact-resume recipe as the real trainers: data order for epoch ``e`` is a function of (seed, e) only, and a
checkpoint records the position inside the epoch.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from jobs.config import opt


@dataclass
class DemoConfig:
    epochs: int = opt(3, "passes over the synthetic data", min=1, max=10_000)
    steps_per_epoch: int = opt(50, "batches per epoch", min=1, max=1_000_000)
    batch_size: int = opt(32, "samples per batch", min=1, max=65_536)
    lr: float = opt(0.05, "SGD learning rate", min=0.0, max=10.0)
    hidden: int = opt(16, "width of the hidden layer", min=1, max=4096)
    step_sleep: float = opt(0.0, "seconds to sleep per step (makes the job watchable)", min=0.0, max=60.0)
    checkpoint_every: int = opt(0, "also save latest.pt every N steps (0: per epoch only)", min=0)
    fail_at_step: int = opt(-1, "raise an error at this step (to see a failed job)", min=-1)
    print_every: int = opt(0, "print a \\r progress frame per step and end the line every N steps (0: none)", min=0)
    spawn_child: bool = opt(False, "run a helper process that ignores SIGTERM in the job's group (kill must reach it)")
    seed: int = opt(0, "random seed", min=0)


CONFIG = DemoConfig


def _model(cfg: DemoConfig) -> Any:
    import torch.nn as nn

    return nn.Sequential(nn.Linear(4, cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, 1))


def _data(cfg: DemoConfig) -> tuple[Any, Any, Any, Any]:
    import torch

    g = torch.Generator().manual_seed(cfg.seed)
    n = cfg.steps_per_epoch * cfg.batch_size
    x = torch.randn(n + 256, 4, generator=g)
    w = torch.tensor([[1.5], [-2.0], [0.5], [1.0]])
    y = torch.sin(x @ w) + 0.1 * torch.randn(n + 256, 1, generator=g)
    return x[:n], y[:n], x[n:], y[n:]


def _checkpoint(cfg: DemoConfig, model: Any, opt_: Any, step: int, epoch: int, batch: int,
                best: float | None) -> dict[str, Any]:
    from core.checkpoint import make_checkpoint
    from jobs.config import to_dict

    return make_checkpoint(kind="demo", arch="mlp", config=to_dict(cfg), model=model.state_dict(),
                           optimizer=opt_.state_dict(), step=step, epoch=epoch, batch_in_epoch=batch,
                           best_metric=best)


def _print_frame(cfg: DemoConfig, step: int, total: int, loss: float) -> None:
    """A progress bar's way of writing: ``\\r`` frames on one line, a newline every ``print_every`` steps."""
    end = "\n" if step % cfg.print_every == 0 or step == total else ""
    sys.stdout.write(f"\rstep {step}/{total} loss {loss:.5f}{end}")
    sys.stdout.flush()


def _spawn_child() -> subprocess.Popen[bytes]:
    """A process of the job's group that outlives a SIGTERM, like a data-loader worker stuck in a syscall."""
    return subprocess.Popen(["sh", "-c", "trap '' TERM; exec sleep 600"], stdin=subprocess.DEVNULL)


def train(rt: Any, cfg: DemoConfig) -> None:
    child = _spawn_child() if cfg.spawn_child else None
    try:
        _train(rt, cfg)
    finally:
        if child is not None:
            child.kill()
            child.wait()


def _train(rt: Any, cfg: DemoConfig) -> None:
    import torch
    import torch.nn.functional as F

    from core.checkpoint import set_rng_state

    rt.seed_everything(cfg.seed)
    xtr, ytr, xva, yva = _data(cfg)
    model = _model(cfg)
    opt_ = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)
    step, epoch, batch0, best = 0, 0, 0, None
    if (ck := rt.resume_checkpoint()) is not None:
        model.load_state_dict(ck["model"])
        opt_.load_state_dict(ck["optimizer"])
        set_rng_state(ck["rng"])
        step, epoch, batch0, best = ck["step"], ck["epoch"], ck["batch_in_epoch"], ck["best_metric"]
    net = rt.wrap_model(model)  # DDP under torchrun (--gpus N); the model itself otherwise
    total = cfg.epochs * cfg.steps_per_epoch
    while epoch < cfg.epochs:
        perm = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
        for b in range(batch0, cfg.steps_per_epoch):
            idx = rt.shard(perm[b * cfg.batch_size:(b + 1) * cfg.batch_size])
            noise = 0.01 * torch.randn(len(idx), 4)  # exercises the torch RNG, which resume must restore
            loss = F.mse_loss(net(xtr[idx] + noise), ytr[idx])
            opt_.zero_grad(set_to_none=True)
            loss.backward()
            opt_.step()
            step += 1
            if step == cfg.fail_at_step:
                raise RuntimeError(f"demo failure requested at step {step}")
            rt.log(step=step, epoch=epoch, split="train", loss=loss.item(), lr=cfg.lr)
            rt.progress(step=step, total_steps=total, epoch=epoch, total_epochs=cfg.epochs, loss=loss.item())
            if cfg.print_every and rt.is_main:  # one log line per step, not one per DDP rank
                _print_frame(cfg, step, total, loss.item())
            if cfg.step_sleep:
                time.sleep(cfg.step_sleep)
            stop = rt.should_stop()  # once per step: a SIGTERM between two asks would end without latest.pt
            if stop or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
                rt.save(_checkpoint(cfg, model, opt_, step, epoch, b + 1, best), "latest.pt")
            if stop:
                return
        epoch, batch0 = epoch + 1, 0
        with torch.no_grad():
            val = F.mse_loss(model(xva), yva).item()
        rt.log(step=step, epoch=epoch, split="val", loss=val)
        rt.event("epoch_end", epoch=epoch, step=step, val_loss=val)
        improved = best is None or val < best
        best = val if improved else best
        ck = _checkpoint(cfg, model, opt_, step, epoch, 0, best)
        rt.save(ck, "latest.pt", *(["best_model.pt"] if improved else []))
    rt.progress(step=step, total_steps=total, epoch=epoch, total_epochs=cfg.epochs, force=True)


if __name__ == "__main__":
    from jobs.runtime import run_job

    run_job(CONFIG, train)
