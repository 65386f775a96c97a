"""Training health while a job runs: badges that warn, never act. Light: no torch.

The loop feeds :class:`HealthMonitor` every step and evaluation; its badges go into ``job.json``'s progress, so the
jobs table, ``jobs show`` and the dashboard show them without reading the metrics. One badge cannot be judged by
the job itself: a stalled process writes nothing, so :func:`stalled` is asked by whoever reads the record.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

WINDOW = 200  # steps of history the step badges compare against
MIN_HISTORY = 30  # steps before a step badge may show (the first steps of a run are not "typical")
SPIKE_MADS = 8.0  # a loss this many median absolute deviations above the median is a spike
SPIKE_SHOWN = 50  # steps a spike badge stays up
GRAD_FACTOR = 10.0  # a gradient norm this many times the median is an explosion
SLOW_FACTOR = 0.5  # recent throughput below this share of the typical one is a slowdown
RECENT = 20  # steps that make "recent"
GPU_FULL = 0.95
RISING_EVALS = 3  # evaluations of rising val loss (with falling train loss) that make overfitting
STALL_MIN_S = 120.0  # never call a job stalled sooner than this without a step
STALL_STEPS = 20.0  # ... or than this many typical steps


@dataclass(frozen=True)
class Badge:
    """``code`` for scripts and styles, ``text`` for people."""

    code: str
    text: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def _median(xs: Any) -> float:
    return statistics.median(xs) if xs else 0.0


class HealthMonitor:
    """Step and evaluation history of one run, and the badges it earns."""

    def __init__(self) -> None:
        self.losses: deque[float] = deque(maxlen=WINDOW)
        self.grads: deque[float] = deque(maxlen=WINDOW)
        self.speeds: deque[float] = deque(maxlen=WINDOW)
        self.step_s: deque[float] = deque(maxlen=WINDOW)
        self.evals: list[tuple[int, int, float, float]] = []  # (epoch, step, val loss, mean train loss since last)
        self._train_since_eval: list[float] = []
        self.spike: tuple[int, float, float] | None = None  # (step, loss, typical)
        self.explosion: tuple[int, float, float] | None = None
        self.gpu_frac: float | None = None
        self.step = 0

    def on_step(self, step: int, loss: float, grad_norm: float, speed: float, seconds: float) -> None:
        self.step = step
        if len(self.losses) >= MIN_HISTORY:
            med = _median(self.losses)
            mad = _median([abs(x - med) for x in self.losses]) or 1e-12
            if loss > med + SPIKE_MADS * mad and loss > 1.5 * med:
                self.spike = (step, loss, med)
            gmed = _median(self.grads)
            if gmed > 0 and grad_norm > GRAD_FACTOR * gmed:
                self.explosion = (step, grad_norm, gmed)
        self.losses.append(loss)
        self.grads.append(grad_norm)
        self.speeds.append(speed)
        self.step_s.append(seconds)
        self._train_since_eval.append(loss)

    def on_eval(self, epoch: int, step: int, val_loss: float | None) -> None:
        if val_loss is None:
            return
        train = sum(self._train_since_eval) / len(self._train_since_eval) if self._train_since_eval else float("nan")
        self.evals.append((epoch, step, val_loss, train))
        self._train_since_eval = []

    def on_gpu(self, used_fraction: float | None) -> None:
        self.gpu_frac = used_fraction

    @property
    def typical_step_s(self) -> float | None:
        return _median(self.step_s) if self.step_s else None

    def badges(self, patience: int = 0) -> list[Badge]:
        out = []
        if self.spike and self.step - self.spike[0] < SPIKE_SHOWN:
            s, v, med = self.spike
            out.append(Badge("loss_spike", f"loss spike at step {s}: {v:.3g} (typical {med:.3g})"))
        if self.explosion and self.step - self.explosion[0] < SPIKE_SHOWN:
            s, v, med = self.explosion
            out.append(Badge("grad_explosion", f"gradient norm {v:.3g} at step {s} (typical {med:.3g}): consider "
                                               "--grad-clip"))
        if len(self.speeds) >= 3 * RECENT:
            recent, typical = _median(list(self.speeds)[-RECENT:]), _median(list(self.speeds)[:-RECENT])
            if typical > 0 and recent < SLOW_FACTOR * typical:
                out.append(Badge("slowdown", f"throughput down to {recent / typical:.0%} of its typical rate"))
        if self.gpu_frac is not None and self.gpu_frac > GPU_FULL:
            out.append(Badge("gpu_memory", f"GPU memory {self.gpu_frac:.0%} full"))
        if (badge := self._overfitting(patience)) is not None:
            out.append(badge)
        return out

    def _overfitting(self, patience: int) -> Badge | None:
        """Val loss rising for ``RISING_EVALS`` evaluations in a row while the train loss falls."""
        last = self.evals[-(RISING_EVALS + 1):]
        if len(last) <= RISING_EVALS:
            return None
        rising = all(b[2] > a[2] for a, b in zip(last, last[1:]))
        falling = all(b[3] < a[3] for a, b in zip(last, last[1:]))
        if not (rising and falling):
            return None
        best = min(self.evals, key=lambda e: e[2])
        wait = patience or 5
        flag = "" if patience else f" --patience {wait}"
        return Badge("overfitting", f"val loss rising for {RISING_EVALS} evaluations while train loss falls: best "
                                    f"was epoch {best[0]} (step {best[1]}); early stopping{flag} would end at epoch "
                                    f"{best[0] + wait}")


def stalled(progress: dict[str, Any], now: float) -> Badge | None:
    """A live, running job whose last heartbeat is much older than its steps take (asked by the reader: a stalled
    process cannot say so itself). Evaluations are allowed the time the last one took, three times over."""
    beat, step_s = progress.get("heartbeat"), progress.get("step_s")
    if not isinstance(beat, (int, float)):
        return None
    limit = max(STALL_MIN_S, STALL_STEPS * step_s if isinstance(step_s, (int, float)) else 0.0)
    if progress.get("phase") == "evaluating":
        eval_s = progress.get("eval_s")
        limit = max(limit, 3 * eval_s if isinstance(eval_s, (int, float)) else 0.0, 600.0)
    silent = now - beat
    if silent <= limit:
        return None
    return Badge("stalled", f"no step for {silent / 60:.0f} min (a step takes {step_s or 0:.2g} s): stuck in I/O, a "
                            "collective or a deadlock? ncanvas jobs stop, then resume")
