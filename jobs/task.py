"""What a job kind brings to the training loop: a small task object. Light: no torch at module scope.

The loop (:mod:`jobs.loop`) owns everything the kinds share: restore, mixed precision, accumulation and clipping,
the non-finite guard, evaluation cadence, best/early stop, throughput, checkpoints and curves, DDP and the stop
protocol. A task supplies only what is its own: model and data, the loss of one micro-batch, its evaluation and
what its checkpoints carry. Torch is imported inside the methods, which run in the job process only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.loop import Loop
    from jobs.runtime import JobRuntime


@dataclass
class Evaluation:
    """One evaluation: metrics per split (``{"val": {"loss": .., "acc": ..}, "test": {..}}``) and extra fields for
    the ``epoch_end`` event (e.g. a confusion matrix)."""

    splits: dict[str, dict[str, float]]
    event: dict[str, Any] = field(default_factory=dict)

    def flat(self) -> dict[str, float]:
        """``{"val_loss": .., "val_acc": .., "test_loss": ..}``: the keys of events, progress and checkpoints."""
        return {f"{split}_{k}": v for split, m in self.splits.items() for k, v in m.items()}


class Task:
    """Base class of the kinds' tasks. ``cfg`` is the kind's config (a :class:`jobs.config.LoopConfig`).

    Attributes set by :meth:`setup`: ``model`` (on the runtime's device). Class attributes: ``kind`` (the
    ``KindSpec`` name) and ``select_split``/``select_key``/``select_higher``: the metric that decides the best
    checkpoint and early stopping (``val``, else ``test`` where a run has no validation split).
    """

    kind: str = ""
    select_split: str = "val"
    select_key: str = "loss"
    select_higher: bool = False

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.model: Any = None

    # ------------------------------------------------------------------------------------------- building
    def setup(self, rt: JobRuntime, ckpt: dict[str, Any] | None) -> None:
        """Build data and model (on ``rt.device``). ``ckpt`` is ``latest.pt`` when resuming: build the same
        architecture (the loop loads the weights afterwards)."""
        raise NotImplementedError

    def optimizers(self, total_steps: int) -> tuple[Any, Any]:
        """The optimizer and the per-step learning-rate scheduler for ``total_steps`` optimizer steps."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------- training
    def epoch_batches(self, epoch: int, batch_size: int) -> Sequence[Any]:
        """The micro-batches of ``epoch`` as index arrays of ``batch_size`` rows (the global batch: the loop gives
        each DDP rank its share). A pure function of (seed, epoch): a resumed job skips exactly what it did."""
        raise NotImplementedError

    def weight(self, idx: Any) -> float:
        """A micro-batch's share of its optimizer step's loss (rows; the LM: target tokens)."""
        return float(len(idx))

    def count(self, idx: Any) -> int:
        """Throughput units of a (global) micro-batch: images, samples, real tokens."""
        return len(idx)

    def loss(self, model: Any, idx: Any, step: int) -> Any:
        """The mean loss of one micro-batch (this rank's rows ``idx``) for optimizer step ``step`` (1-based), under
        the loop's autocast. ``model`` is the forward to call (DDP-wrapped and/or compiled)."""
        raise NotImplementedError

    def train_metrics(self, loss: float) -> dict[str, float]:
        """Extra values for a train row (the LM: perplexity)."""
        return {}

    def after_step(self, step: int, loss: float) -> None:
        """Called on every rank after each optimizer step (the demo's progress frames and sleeps)."""

    # ------------------------------------------------------------------------------------------- evaluation
    def evaluate(self, autocast: Callable[[], Any]) -> Evaluation:
        """Evaluate ``self.model`` (rank 0 only; the loop shares the result with the other ranks)."""
        raise NotImplementedError

    def finish(self, loop: Loop) -> None:
        """After the last epoch (not after a stop): e.g. test the best weights (``loop.load_best()``)."""

    # ------------------------------------------------------------------------------------------- checkpoints
    def describe(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """``(arch, config, extra)`` every checkpoint of this run carries, so inference needs the file alone."""
        raise NotImplementedError

    def on_best(self, ckpt_dir: Path) -> None:
        """Rank 0, after ``best_model.pt`` was written (the GPT-2 kind also saves ``best_model_hf/``)."""

    def close(self) -> None:
        """Release what :meth:`setup` started (helper processes), however the run ended."""
