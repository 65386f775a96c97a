"""Job kind ``demo``: a tiny, deterministic regression that really trains, logs and checkpoints.

For trying ncanvas out in seconds and for testing the supervisor and the training loop with real processes. It
runs in the one loop (:mod:`jobs.loop`) like every kind; the data order of epoch ``e`` is a function of
(seed, e) only, and the noise added to each batch draws from the torch RNG, which resume must restore.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobs.config import LoopConfig, opt, to_dict
from jobs.task import Evaluation, Task

if TYPE_CHECKING:
    from jobs.runtime import JobRuntime


@dataclass
class DemoConfig(LoopConfig):
    epochs: int = opt(3, "passes over the synthetic data", min=1, max=10_000)
    batch_size: int = opt(32, "samples per batch (on each process under DDP)", min=1, max=65_536)
    lr: float = opt(0.05, "SGD learning rate", min=0.0, max=10.0)
    steps_per_epoch: int = opt(50, "batches per epoch on one process (the data is this many batches)", min=1,
                               max=1_000_000)
    hidden: int = opt(16, "width of the hidden layer", min=1, max=4096)
    step_sleep: float = opt(0.0, "seconds to sleep per step (makes the job watchable)", min=0.0, max=60.0)
    fail_at_step: int = opt(-1, "raise an error at this step (to see a failed job)", min=-1)
    print_every: int = opt(0, "print a \\r progress frame per step and end the line every N steps (0: none)", min=0)
    spawn_child: bool = opt(False, "run a helper process that ignores SIGTERM in the job's group (kill must reach it)")


CONFIG = DemoConfig


def _print_frame(step: int, total: int, loss: float, every: int) -> None:
    """A progress bar's way of writing: ``\\r`` frames on one line, a newline every ``every`` steps."""
    end = "\n" if step % every == 0 or step == total else ""
    sys.stdout.write(f"\rstep {step}/{total} loss {loss:.5f}{end}")
    sys.stdout.flush()


def _spawn_child() -> subprocess.Popen[bytes]:
    """A process of the job's group that outlives a SIGTERM, like a data-loader worker stuck in a syscall."""
    return subprocess.Popen(["sh", "-c", "trap '' TERM; exec sleep 600"], stdin=subprocess.DEVNULL)


class DemoTask(Task):
    """y = sin(x·w) + noise, fitted by a one-hidden-layer MLP with SGD."""

    kind = "demo"
    child: subprocess.Popen[bytes] | None = None

    def setup(self, rt: JobRuntime, ckpt: dict[str, Any] | None) -> None:
        import torch
        import torch.nn as nn

        cfg = self.cfg
        g = torch.Generator().manual_seed(cfg.seed)
        n = cfg.steps_per_epoch * cfg.batch_size
        x = torch.randn(n + 256, 4, generator=g)
        y = torch.sin(x @ torch.tensor([[1.5], [-2.0], [0.5], [1.0]])) + 0.1 * torch.randn(n + 256, 1, generator=g)
        self.x, self.y, self.x_val, self.y_val = x[:n], y[:n], x[n:], y[n:]
        self.model = nn.Sequential(nn.Linear(4, cfg.hidden), nn.Tanh(), nn.Linear(cfg.hidden, 1))
        self.is_main = rt.is_main
        self.child = _spawn_child() if cfg.spawn_child else None

    def optimizers(self, total_steps: int) -> tuple[Any, Any]:
        import torch

        opt_ = torch.optim.SGD(self.model.parameters(), lr=self.cfg.lr, momentum=0.9)
        return opt_, torch.optim.lr_scheduler.LambdaLR(opt_, lambda _s: 1.0)

    def epoch_batches(self, epoch: int, batch_size: int) -> list[Any]:
        import torch

        perm = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.cfg.seed * 1000 + epoch))
        return [perm[i:i + batch_size] for i in range(0, len(perm), batch_size)]

    def loss(self, model: Any, idx: Any, step: int) -> Any:
        import torch
        import torch.nn.functional as F

        if step == self.cfg.fail_at_step:
            raise RuntimeError(f"demo failure requested at step {step}")
        noise = 0.01 * torch.randn(len(idx), 4)  # exercises the torch RNG, which resume must restore
        return F.mse_loss(model(self.x[idx] + noise), self.y[idx])

    def after_step(self, step: int, loss: float) -> None:
        cfg = self.cfg
        if cfg.print_every and self.is_main:  # one log line per step, not one per DDP rank
            _print_frame(step, cfg.epochs * cfg.steps_per_epoch, loss, cfg.print_every)
        if cfg.step_sleep:
            time.sleep(cfg.step_sleep)

    def evaluate(self, autocast: Callable[[], Any]) -> Evaluation:
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            val = F.mse_loss(self.model(self.x_val), self.y_val).item()
        return Evaluation({"val": {"loss": val}})

    def describe(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        return "mlp", to_dict(self.cfg), {}

    def close(self) -> None:
        if self.child is not None:
            self.child.kill()
            self.child.wait()


def train(rt: JobRuntime, cfg: DemoConfig) -> None:
    """Train under ``rt`` in this process (the entry point below, and tests)."""
    from jobs.loop import fit

    fit(rt, DemoTask(cfg))


if __name__ == "__main__":
    from jobs.loop import entry

    entry(CONFIG, DemoTask)
