"""The one training loop every job kind runs in (torch; imported by the job process only).

``fit(rt, task)`` trains ``task`` (a :class:`jobs.task.Task`) under the job runtime ``rt``. It owns what every kind
shares, so a feature added here reaches every kind with one change:

- restore from ``latest.pt``: model, optimizer, scheduler, grad scaler, RNG states of every rank, data position;
- mixed precision: bf16 autocast where the GPU computes it natively, fp16 + GradScaler where bf16 would be
  emulated, fp32 on the CPU;
- gradient accumulation (each micro-batch weighted by its share of the step) and clipping;
- the non-finite guard: a NaN/inf loss or gradient norm never reaches the weights, and no checkpoint with
  non-finite weights is written; ``--on-nan stop`` fails the job with a reason and a fix, ``skip-batch`` skips
  (a bounded number in a row);
- evaluation at epoch ends (and every ``--eval-every`` steps), best checkpoint and early stopping with the same
  events for every kind, ``training_curves.png``;
- throughput in the kind's unit (``KindSpec.throughput``: images, tokens or samples per second);
- checkpoints ``epoch_0.pt``, ``latest.pt``, ``best_model.pt``, ``epoch_<n>.pt``;
- DDP: the model wrapped, each global micro-batch split between the ranks, rank 0 writing, the ranks agreeing on
  stops and failures;
- the stop protocol: a stop request is checked once per step; the step finishes, ``latest.pt`` is saved.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from core.errors import NcanvasError
from jobs.health import HealthMonitor
from jobs.kinds import get_kind
from jobs.task import Evaluation, Task

if TYPE_CHECKING:
    from jobs.runtime import JobRuntime

MAX_SKIPPED = 10  # --on-nan skip-batch: this many non-finite steps in a row end the job all the same


class Diverged(NcanvasError):
    """Training produced a non-finite loss or gradient; the message says where, and what to try."""


@dataclass
class LoopState:
    """Where training stands: everything a checkpoint needs besides the state dicts."""

    step: int = 0  # optimizer steps done, monotonic across resumes
    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # optimizer steps already done in ``epoch``
    best: float | None = None  # best selection metric so far
    best_step: int | None = None
    bad_evals: int = 0  # evaluations since the best one
    skipped: int = 0  # non-finite steps skipped in a row (--on-nan skip-batch)

    @classmethod
    def from_checkpoint(cls, ck: dict[str, Any]) -> LoopState:
        saved = ck.get("extra", {}).get("loop") or {}
        # checkpoints from before the one loop kept the early-stopping count as extra["bad_epochs"]
        bad = saved.get("bad_evals", ck.get("extra", {}).get("bad_epochs", 0))
        return cls(int(ck["step"]), int(ck["epoch"]), int(ck["batch_in_epoch"]), ck.get("best_metric"),
                   saved.get("best_step"), int(bad), int(saved.get("skipped", 0)))


class AmpPolicy:
    """Which autocast a device gets: fp32 on the CPU (or with ``--no-amp``), bf16 where the GPU has bf16 units,
    fp16 with a GradScaler where bf16 would only be emulated (T4, V100: several times slower than fp16)."""

    def __init__(self, enabled: bool, device: torch.device) -> None:
        from core.amp import native_bf16

        self.device_type = device.type
        self.enabled = bool(enabled) and device.type == "cuda"
        self.dtype = torch.bfloat16 if self.enabled and native_bf16() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.enabled and self.dtype == torch.float16 else None

    def autocast(self) -> Any:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)

    def __str__(self) -> str:
        if not self.enabled:
            return "fp32"
        return "bf16" if self.scaler is None else "fp16 + grad scaling"


class Throughput:
    """Units per second over the last ``window`` steps (recent speed, not a since-start average that hides a
    slowdown). ``clock`` is injectable so tests need not sleep."""

    def __init__(self, window: int = 20, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self._steps: deque[tuple[int, float]] = deque(maxlen=window)

    def add(self, units: int, seconds: float) -> float:
        self._steps.append((units, seconds))
        total = sum(s for _, s in self._steps)
        return sum(u for u, _ in self._steps) / max(total, 1e-9)


def shard(idx: Any, rank: int, world: int) -> Any:
    """Rank ``rank``'s rows of a global micro-batch: every ``world``-th row, so the ranks' rows are disjoint and
    together the whole batch. A batch smaller than the world (an epoch's last) goes whole to every rank."""
    return idx[rank::world] if world > 1 and len(idx) >= world else idx


def nan_fix(cfg: Any, amp: AmpPolicy) -> str:
    """What to try after a divergence, from the run's own settings."""
    tips = [f"lower --lr (now {cfg.lr:g}; try {cfg.lr / 10:g})"]
    if not cfg.grad_clip:
        tips.append("clip gradients with --grad-clip 1.0")
    if amp.scaler is not None:
        tips.append("train in full precision with --no-amp")
    return "; ".join(tips)


class Loop:
    """One training run of ``task`` under ``rt``. See the module docstring for what it owns."""

    def __init__(self, rt: JobRuntime, task: Task) -> None:
        self.rt, self.task, self.cfg = rt, task, task.cfg
        self.spec = get_kind(task.kind)
        self.device = rt.device
        self.world, self.rank = rt.world_size, rt.rank
        self.state = LoopState()
        self.amp = AmpPolicy(self.cfg.amp, self.device)
        self.speed = Throughput()
        self.health = HealthMonitor()
        self._vitals_at = 0.0
        self.last_eval: dict[str, float] = {}
        self.opt: Any = None
        self.sched: Any = None
        self.fwd: Any = None
        self.total = 0
        self.steps_per_epoch = 0

    # ----------------------------------------------------------------------------------------- set-up
    def setup(self) -> None:
        cfg, rt, task = self.cfg, self.rt, self.task
        if cfg.cpu_threads:
            torch.set_num_threads(cfg.cpu_threads)
        rt.seed_everything(cfg.seed)
        ck = rt.resume_checkpoint()
        task.setup(rt, ck)
        n_micro = len(task.epoch_batches(0, self.global_batch))
        if n_micro == 0:
            raise NcanvasError("the training split is empty: nothing to train on")
        self.steps_per_epoch = -(-n_micro // cfg.grad_accum)
        self.total = cfg.epochs * self.steps_per_epoch
        if cfg.max_steps:
            self.total = min(self.total, cfg.max_steps)
        self.opt, self.sched = task.optimizers(self.total)
        if ck is not None:
            self._restore(ck)
        self.fwd = rt.wrap_model(task.model)
        if cfg.compile and self.device.type == "cuda":
            self.fwd = torch.compile(self.fwd)
        n_params = sum(p.numel() for p in {id(p): p for p in task.model.parameters()}.values())
        if rt.is_main:
            print(f"[ncanvas] {self.arch}: {n_params / 1e6:.2f}M parameters on {self.device} ({self.amp}); "
                  f"{self.steps_per_epoch} steps per epoch, {self.total} in all", flush=True)

    @property
    def global_batch(self) -> int:
        return self.cfg.batch_size * self.world

    @property
    def arch(self) -> str:
        return self.task.describe()[0]

    def _restore(self, ck: dict[str, Any]) -> None:
        from core.checkpoint import load_model_state, set_rng_state

        load_model_state(self.task.model, ck, self.rt.paths.latest)
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        if self.amp.scaler is not None and ck.get("scaler"):
            self.amp.scaler.load_state_dict(ck["scaler"])
        ranks = ck.get("extra", {}).get("rng_ranks")
        if self.world > 1 and ranks and len(ranks) == self.world:
            set_rng_state(ranks[self.rank])
        else:
            if self.world > 1 and self.rank == 0:  # saved by another number of ranks: logged, not fatal
                print(f"[ncanvas] latest.pt holds RNG states for {len(ranks or [1])} rank(s), not {self.world}: "
                      "every rank restores rank 0's", flush=True)
            set_rng_state(ck["rng"])
        self.state = LoopState.from_checkpoint(ck)

    # ----------------------------------------------------------------------------------------- the loop
    def run(self) -> None:
        self.setup()
        st = self.state
        if st.step == 0 and st.batch_in_epoch == 0 and self.rt.resume_checkpoint() is None:
            self.save("epoch_0.pt", full=False)
        while st.epoch < self.cfg.epochs and st.step < self.total:
            ended = self.run_epoch()
            if ended == "stopped":
                return  # latest.pt is saved
            if ended == "early" or not self.evaluate(epoch_end=ended == "epoch") or ended == "max_steps":
                break
        if self.rt.should_stop():
            self.save("latest.pt")
            return
        self.task.finish(self)
        self.progress(force=True)

    def run_epoch(self) -> str:
        """Train the rest of the current epoch: ``epoch`` when it ended, ``stopped`` on a stop request (latest.pt
        saved), ``max_steps`` when the step budget ran out inside it, ``early`` when a mid-epoch evaluation
        stopped training."""
        cfg, st = self.cfg, self.state
        batches = self.task.epoch_batches(st.epoch, self.global_batch)
        for s in range(st.batch_in_epoch, self.steps_per_epoch):
            if st.step >= self.total:
                return "max_steps"
            micro = batches[s * cfg.grad_accum:(s + 1) * cfg.grad_accum]
            t0 = time.perf_counter()
            loss, gnorm, lr = self.train_step(micro, st.step + 1)
            st.step, st.batch_in_epoch = st.step + 1, s + 1
            seconds = time.perf_counter() - t0
            speed = self.speed.add(sum(self.task.count(idx) for idx in micro), seconds)
            self.health.on_step(st.step, loss, gnorm, speed, seconds)
            self.log_step(loss, gnorm, lr, speed)
            self.task.after_step(st.step, loss)
            stop = self.rt.should_stop()  # once per step: a request between two asks would end without latest.pt
            if stop or (cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0):
                self.save("latest.pt")
            if stop:
                return "stopped"
            if cfg.eval_every and st.step % cfg.eval_every == 0 and s + 1 < self.steps_per_epoch:
                if not self.evaluate(epoch_end=False):
                    return "early"
        if st.step >= self.total and st.batch_in_epoch < self.steps_per_epoch:
            return "max_steps"
        st.epoch, st.batch_in_epoch = st.epoch + 1, 0
        return "epoch"

    def train_step(self, micro: Sequence[Any], step: int) -> tuple[float, float, float]:
        """One optimizer step over ``micro`` (global micro-batches); returns (loss, gradient norm, lr used).

        Each micro-batch's mean loss is weighted by its share of the step (rows, or target tokens), so
        accumulation equals one large batch. Under DDP gradients are all-reduced once, on the last micro-batch."""
        local = [shard(idx, self.rank, self.world) for idx in micro]
        weights = [self.task.weight(idx) for idx in local]
        total_w = max(sum(weights), 1e-12)
        self.opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        no_sync = getattr(self.fwd, "no_sync", None) or getattr(getattr(self.fwd, "_orig_mod", None), "no_sync", None)
        for i, (idx, w) in enumerate(zip(local, weights)):
            sync = no_sync() if no_sync is not None and i < len(local) - 1 else contextlib.nullcontext()
            with sync:
                with self.amp.autocast():
                    loss = self.task.loss(self.fwd, idx, step) * (w / total_w)
                loss_sum += float(loss.item())
                (self.amp.scaler.scale(loss) if self.amp.scaler is not None else loss).backward()
        if self.amp.scaler is not None:
            self.amp.scaler.unscale_(self.opt)
        params = [p for g in self.opt.param_groups for p in g["params"]]
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip or float("inf")))
        lr = float(self.sched.get_last_lr()[0])  # the rate this step uses; the scheduler then moves on
        if self._non_finite(loss_sum, gnorm):
            self._skip_or_fail(step, loss_sum, gnorm, lr)
            return loss_sum, gnorm, lr
        self.state.skipped = 0
        if self.amp.scaler is not None:
            self.amp.scaler.step(self.opt)  # skips the update itself when fp16 gradients overflowed
            self.amp.scaler.update()
        else:
            self.opt.step()
        self.sched.step()
        return loss_sum, gnorm, lr

    def _non_finite(self, loss: float, gnorm: float) -> bool:
        """Whether this step diverged, agreed by every rank. Under fp16 grad scaling an infinite gradient norm with
        a finite loss is an ordinary overflow that the scaler handles (it skips the update and lowers the scale)."""
        bad = not math.isfinite(loss) or (not math.isfinite(gnorm) and self.amp.scaler is None)
        if self.world > 1:
            import torch.distributed as dist

            flag = torch.tensor([1.0 if bad else 0.0], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            bad = bool(flag.item())
        return bad

    def _skip_or_fail(self, step: int, loss: float, gnorm: float, lr: float) -> None:
        self.opt.zero_grad(set_to_none=True)  # the non-finite gradients never reach the weights
        what = f"non-finite {'loss' if not math.isfinite(loss) else 'gradient norm'} at step {step} (lr {lr:.3g})"
        self.state.skipped += 1
        if self.cfg.on_nan == "skip-batch" and self.state.skipped <= MAX_SKIPPED:
            self.rt.event("skipped_batch", step=step, loss=loss, grad_norm=gnorm, lr=lr, in_a_row=self.state.skipped)
            if self.rt.is_main:
                print(f"[ncanvas] {what}: batch skipped ({self.state.skipped} in a row)", flush=True)
            return
        self.rt.event("diverged", step=step, loss=loss, grad_norm=gnorm, lr=lr)
        kept = f"latest.pt from step {self._latest_step()} is kept" if self._latest_step() else "no checkpoint kept"
        raise Diverged(f"training diverged: {what}; {kept}. Try: {nan_fix(self.cfg, self.amp)}")

    def _latest_step(self) -> int | None:
        from core.checkpoint import load_checkpoint

        path = self.rt.paths.latest
        try:
            return int(load_checkpoint(path)["step"]) if path.is_file() else None
        except NcanvasError:
            return None

    # ----------------------------------------------------------------------------------------- reporting
    def log_step(self, loss: float, gnorm: float, lr: float, speed: float) -> None:
        st, key = self.state, self.spec.throughput
        self.rt.log(step=st.step, epoch=st.epoch, split="train", loss=loss, lr=lr, grad_norm=gnorm,
                    **{key: round(speed, 1)}, **self.task.train_metrics(loss))
        last: dict[str, Any] = {"loss": loss, key: round(speed, 1)}
        self.progress(**last)

    def progress(self, force: bool = False, **last: Any) -> None:
        """The heartbeat: where training stands, how it is doing (health badges, the typical step time a reader
        judges a stall by) and, once a second, the process's memory."""
        st = self.state
        now = time.monotonic()
        if force or now - self._vitals_at >= 1.0:
            self._vitals_at = now
            last.update(self._vitals())
        self.rt.progress(step=st.step, total_steps=self.total, epoch=st.epoch, total_epochs=self.cfg.epochs,
                         force=force, step_s=self.health.typical_step_s,
                         health=[b.to_json() for b in self.health.badges(self.cfg.patience)], **last)

    def _vitals(self) -> dict[str, Any]:
        from jobs.evidence import rss_mb

        out: dict[str, Any] = {"rss_mb": rss_mb()}
        if self.device.type == "cuda":
            free, total = torch.cuda.mem_get_info(self.device)
            self.health.on_gpu(1.0 - free / total)
            out["gpu_mem_frac"] = round(1.0 - free / total, 4)
        return out

    # ----------------------------------------------------------------------------------------- evaluation
    def evaluate(self, epoch_end: bool) -> bool:
        """Evaluate, log, checkpoint, plot; False when early stopping ends training."""
        cfg, st, rt = self.cfg, self.state, self.rt
        self.progress(force=True, phase="evaluating")
        t0 = time.perf_counter()
        ev = self._evaluation()
        self.health.on_eval(st.epoch, st.step, ev.splits.get("val", {}).get("loss"))
        for split, metrics in ev.splits.items():
            rt.log(step=st.step, epoch=st.epoch, split=split, **metrics)
        flat = ev.flat()
        value = self._selection(ev)
        improved = value is not None and (st.best is None or (value > st.best if self.task.select_higher
                                                               else value < st.best))
        if improved:
            st.best, st.best_step, st.bad_evals = value, st.step, 0
        else:
            st.bad_evals += 1
        self.last_eval = flat
        rt.event("epoch_end" if epoch_end else "eval", epoch=st.epoch, step=st.step, **flat, best=improved,
                 **ev.event)
        self.progress(force=True, phase="training", eval_s=round(time.perf_counter() - t0, 3),
                      **{k: round(v, 5) for k, v in flat.items() if isinstance(v, (int, float))})
        names = ["latest.pt"] + ([f"epoch_{st.epoch}.pt"] if epoch_end and cfg.save_every_epoch else [])
        self.save(*names)
        if improved:
            self.save("best_model.pt", full=False)
            if rt.is_main:
                self.task.on_best(rt.paths.ckpt_dir)
        if rt.is_main:
            from core.curves import plot_curves

            plot_curves(rt.paths.metrics, rt.paths.curves_png, {t: list(k) for t, k in self.spec.panels},
                        train_ema=0.9)
        if cfg.patience and st.bad_evals >= cfg.patience:
            name = f"{self.task.select_split}_{self.task.select_key}"
            rt.event("early_stop", epoch=st.epoch, step=st.step, patience=cfg.patience, best=st.best,
                     best_step=st.best_step)
            if rt.is_main:
                print(f"[ncanvas] early stop: no better {name} in {st.bad_evals} evaluations (best {st.best:.5g} "
                      f"at step {st.best_step})", flush=True)
            return False
        return True

    def _evaluation(self) -> Evaluation:
        """Rank 0 evaluates the unwrapped model; the other ranks get its result, so every rank takes the same
        decisions (best, early stop) without evaluating the same data again."""
        ev = self.task.evaluate(self.amp.autocast) if self.rank == 0 else None
        self.task.model.train()
        if self.world > 1:
            import torch.distributed as dist

            box = [ev]
            dist.broadcast_object_list(box, src=0)
            ev = box[0]
        assert ev is not None
        return ev

    def _selection(self, ev: Evaluation) -> float | None:
        task = self.task
        for split in (task.select_split, "test"):
            value = ev.splits.get(split, {}).get(task.select_key)
            if value is not None and math.isfinite(value):
                return float(value)
        return None

    # ----------------------------------------------------------------------------------------- checkpoints
    def checkpoint(self, full: bool = True) -> dict[str, Any]:
        """The checkpoint of this moment; ``full=False``: weights and description only (best, epoch files)."""
        from core.checkpoint import make_checkpoint

        st = self.state
        arch, config, extra = self.task.describe()
        extra = dict(extra, loop={k: v for k, v in asdict(st).items() if k in ("best_step", "bad_evals", "skipped")})
        return make_checkpoint(
            kind=self.task.kind, arch=arch, config=config, model=self.task.model.state_dict(),
            optimizer=self.opt.state_dict() if full else None, scheduler=self.sched.state_dict() if full else None,
            scaler=self.amp.scaler.state_dict() if full and self.amp.scaler is not None else None,
            step=st.step, epoch=st.epoch, batch_in_epoch=st.batch_in_epoch, best_metric=st.best,
            metrics=self.last_eval, with_rng=full, extra=extra)

    def save(self, *names: str, full: bool = True) -> None:
        """Write ``names`` (atomically, rank 0). Weights that are not finite are never written: the last good
        file stays. Under DDP every rank calls this at the same step (its RNG state goes into the file)."""
        state = self.task.model.state_dict()
        if not all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point()):
            self.rt.event("diverged", step=self.state.step, where="weights")  # every rank holds the same weights
            raise Diverged(f"training diverged: the weights are not finite at step {self.state.step}; "
                           f"{', '.join(names)} not written, the last good files are kept. "
                           f"Try: {nan_fix(self.cfg, self.amp)}")
        ranks = self._gather_rng() if full and self.world > 1 else None
        if not self.rt.is_main:
            return
        ck = self.checkpoint(full)
        if ranks is not None:
            ck["extra"]["rng_ranks"] = ranks
        self.rt.save(ck, *names)
        if "latest.pt" in names:  # what a failure report can say is kept
            self.rt.record.progress["saved_step"] = self.state.step

    def _gather_rng(self) -> list[Any]:
        import torch.distributed as dist

        from core.checkpoint import rng_state

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, rng_state())
        return out

    def load_best(self) -> bool:
        """Put ``best_model.pt``'s weights into the model (for a final test); False when there is none."""
        from core.checkpoint import load_checkpoint, load_model_state

        path = self.rt.paths.best
        if not path.is_file():
            return False
        load_model_state(self.task.model, load_checkpoint(path, kind=self.task.kind), path)
        return True


def fit(rt: JobRuntime, task: Task) -> Loop:
    """Train ``task`` under ``rt`` (see the module docstring); returns the finished loop."""
    loop = Loop(rt, task)
    try:
        loop.run()
    finally:
        task.close()
    return loop


def entry(config_cls: type, make_task: Callable[[Any], Task]) -> None:
    """``python -m jobs.<kind> --run-dir ...``: the kind's process entry point (``make_task(cfg)``)."""
    from jobs.runtime import run_job

    run_job(config_cls, lambda rt, cfg: fit(rt, make_task(cfg)))
