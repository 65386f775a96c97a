"""The training loop shared by the ``llm`` and ``gpt2`` job kinds (torch; imported lazily by the kind modules).

What differs between the kinds (building the model and tokenizer, what a checkpoint carries, the HF export) is a
small hooks object; everything else (masked loss, length-bucketed batches, AdamW, warmup + cosine, accumulation,
AMP, clipping, metrics, early stopping, exact resume) lives here once.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.amp import native_bf16
from core.llm.data import TokenizedSplit, collate, epoch_batches, load_records, tokenize
from core.llm.hooks import GPT2Hooks, LMHooks, OwnLMHooks  # noqa: F401 - re-exported for the kind modules
from core.llm.model import lm_loss


@dataclass
class Loop:
    """Where training stands; everything a checkpoint needs besides the state dicts."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # optimizer steps already done in ``epoch``
    best: float | None = None
    bad_epochs: int = 0


def lr_lambda(total: int, warmup: int, min_frac: float):  # -> Callable[[int], float]
    """Linear warmup then cosine decay to ``min_frac`` of the peak."""
    warmup = min(warmup, max(1, total // 10))

    def f(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        progress = min(1.0, (s - warmup) / max(1, total - warmup))
        return min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def make_optimizer(model: torch.nn.Module, cfg: Any, device: torch.device) -> torch.optim.Optimizer:
    """AdamW with decay on matrices only (not norms, biases); fused kernels on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    seen: set[int] = set()
    decay, no_decay = [], []
    for p in params:
        if id(p) in seen:  # tied weights appear once
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=device.type == "cuda")


@torch.no_grad()
def evaluate(hooks: LMHooks, model: torch.nn.Module, split: TokenizedSplit, batch_size: int, device: torch.device,
             amp: dict[str, Any], limit: int = 0) -> dict[str, float]:
    """Token-weighted loss and perplexity on (the first ``limit`` of) a split."""
    model.eval()
    lengths = split.lengths[:limit] if limit else split.lengths
    total, count = 0.0, 0
    for idx in epoch_batches(lengths, batch_size, 0, 0, shuffle=False):
        x, y = (t.to(device) for t in collate(split, idx))
        with torch.autocast(device.type, **amp):
            logits = hooks.logits(model, x)
        n = int((y != -100).sum())
        total += lm_loss(logits, y).item() * n
        count += n
    model.train()
    loss = total / max(count, 1)
    return {"loss": loss, "ppl": math.exp(min(loss, 50.0))}


def _amp_settings(cfg: Any, device: torch.device) -> tuple[dict[str, Any], torch.amp.GradScaler | None]:
    """bf16 autocast where the GPU has bf16 units; fp16 + GradScaler where it would only be emulated."""
    if device.type != "cuda" or not cfg.amp:
        return {"enabled": False}, None
    if native_bf16():
        return {"dtype": torch.bfloat16, "enabled": True}, None
    return {"dtype": torch.float16, "enabled": True}, torch.amp.GradScaler("cuda")


def compiles(cfg: Any, device: torch.device) -> bool:
    """Whether the model runs under torch.compile (``--compile``, honoured on CUDA only)."""
    return bool(cfg.compile) and device.type == "cuda"


def pad_multiple(compiled: bool, block_size: int) -> int:
    """What sequence lengths are rounded up to: 64 under torch.compile (a handful of shapes instead of a
    recompile per length) when that stays within the block size; else 1, since eager kernels (DDP included)
    take any length and every padded position is wasted compute."""
    return 64 if compiled and block_size % 64 == 0 else 1


def real_tokens(lengths: np.ndarray, micro: list[np.ndarray]) -> int:
    """Input tokens of an optimizer step that are not padding, over all ranks: a sequence of ``n`` ids feeds
    ``n - 1`` inputs. Counted on the global (unsharded) indices, which every rank knows, so no all-reduce."""
    return int(sum(int(lengths[idx].sum()) - len(idx) for idx in micro))


def _prepare_data(rt: Any, cfg: Any, hooks: LMHooks, ckpt: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    t0 = time.perf_counter()
    records = load_records(cfg.data, cfg.n_pairs, cfg.data_seed)
    if not records["train"] or not records["val"]:
        raise ValueError(f"need train and val pairs; got {', '.join(f'{k} {len(v)}' for k, v in records.items())}")
    model, tok = hooks.build(cfg, records, ckpt)
    limit = {"train": None, "val": cfg.eval_max or None, "test": cfg.eval_max or None}
    splits = {s: tokenize(tok, recs[:limit[s]], cfg.block_size) for s, recs in records.items()}
    print(f"[ncanvas] {len(records['train'])} train / {len(records['val'])} val / {len(records['test'])} test "
          f"pairs, tokenizer {tok.name} (vocab {tok.vocab_size}), "
          f"{splits['train'].n_target_tokens()} target tokens per epoch; ready in {time.perf_counter() - t0:.1f}s",
          flush=True)
    return (model, tok), splits


def train_lm(rt: Any, cfg: Any, hooks: LMHooks) -> None:
    """Train one explainer LM under the job runtime ``rt`` (see DESIGN.md: metrics, checkpoints, stop/resume)."""
    from core.checkpoint import set_rng_state

    rt.seed_everything(cfg.seed)
    device = rt.device
    ckpt = rt.resume_checkpoint()
    (model, tok), splits = _prepare_data(rt, cfg, hooks, ckpt)
    model.to(device)
    n_params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    print(f"[ncanvas] {hooks.arch(model)}: {n_params / 1e6:.2f}M parameters on {device}", flush=True)
    amp, scaler = _amp_settings(cfg, device)
    opt = make_optimizer(model, cfg, device)
    train = splits["train"]
    n_batches = math.ceil(len(train) / cfg.batch_size)
    steps_per_epoch = math.ceil(n_batches / cfg.grad_accum)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(total, cfg.warmup_steps, cfg.min_lr_frac))
    loop = Loop()
    if ckpt is not None:
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        loop = Loop(ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"], ckpt["best_metric"],
                    ckpt["extra"].get("bad_epochs", 0))
    wrapped = rt.wrap_model(model)  # DistributedDataParallel under torchrun (--gpus N), else the model
    fwd = torch.compile(wrapped) if compiles(cfg, device) else wrapped
    ctx = _Ctx(rt, cfg, hooks, model, fwd, tok, opt, sched, scaler, amp, splits, total, steps_per_epoch)
    ctx.run(loop)


class _Ctx:
    """The pieces of one training run, so the loop's helpers stay small."""

    def __init__(self, rt: Any, cfg: Any, hooks: LMHooks, model: Any, fwd: Any, tok: Any, opt: Any, sched: Any,
                 scaler: Any, amp: dict[str, Any], splits: dict[str, TokenizedSplit], total: int,
                 steps_per_epoch: int) -> None:
        self.rt, self.cfg, self.hooks, self.model, self.fwd, self.tok = rt, cfg, hooks, model, fwd, tok
        self.opt, self.sched, self.scaler, self.amp, self.splits = opt, sched, scaler, amp, splits
        self.total, self.steps_per_epoch, self.device = total, steps_per_epoch, rt.device
        self.pad = pad_multiple(compiles(cfg, self.device), cfg.block_size)
        self.train_lengths = splits["train"].lengths

    def checkpoint(self, loop: Loop, metrics: dict[str, Any] | None = None, full: bool = True) -> dict[str, Any]:
        from dataclasses import asdict

        from core.checkpoint import make_checkpoint

        return make_checkpoint(
            kind=self.rt.kind, arch=self.hooks.arch(self.model), model=self.model.state_dict(),
            config=dict(asdict(self.cfg), **self.hooks.config_extra(self.model)),
            optimizer=self.opt.state_dict() if full else None, scheduler=self.sched.state_dict() if full else None,
            scaler=self.scaler.state_dict() if full and self.scaler is not None else None,
            step=loop.step, epoch=loop.epoch, batch_in_epoch=loop.batch_in_epoch, best_metric=loop.best,
            metrics=metrics, with_rng=full, extra=dict(self.hooks.extra(self.model, self.tok),
                                                       bad_epochs=loop.bad_epochs))

    def train_step(self, micro: list[np.ndarray]) -> tuple[float, int, float, float]:
        """One optimizer step over ``micro`` batches; token-weighted loss, so accumulation equals one big batch.

        Returns (loss, real input tokens of the step over all ranks, gradient norm, learning rate)."""
        n_real = real_tokens(self.train_lengths, micro)
        world = getattr(self.rt, "world_size", 1)
        micro = [self.rt.shard(idx) if len(idx) >= world else idx for idx in micro]  # this rank's rows
        batches = [collate(self.splits["train"], idx, self.pad) for idx in micro]
        n_target = sum(int((y != -100).sum()) for _, y in batches)
        self.opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        ddp = getattr(self.fwd, "no_sync", None) or getattr(getattr(self.fwd, "_orig_mod", None), "no_sync", None)
        for i, (x, y) in enumerate(batches):
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            # Under DDP, gradients are all-reduced once per optimizer step, not per micro-batch.
            sync_ctx = ddp() if ddp is not None and i < len(batches) - 1 else contextlib.nullcontext()
            with sync_ctx:
                with torch.autocast(self.device.type, **self.amp):
                    logits = self.hooks.logits(self.fwd, x)
                loss = lm_loss(logits, y) * (int((y != -100).sum()) / max(n_target, 1))
                loss_sum += loss.item()
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        if self.scaler is not None:
            self.scaler.unscale_(self.opt)
        gnorm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip or float("inf")))
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        lr = self.sched.get_last_lr()[0]  # the rate this step used (the scheduler then moves to the next one)
        self.sched.step()
        return loss_sum, n_real, gnorm, lr

    def run_epoch(self, loop: Loop) -> bool:
        """Train the rest of ``loop.epoch``; False when a stop request (or max_steps) ended it early."""
        cfg, rt = self.cfg, self.rt
        batches = epoch_batches(self.splits["train"].lengths, cfg.batch_size, cfg.seed, loop.epoch)
        t0, real = time.perf_counter(), 0
        for s in range(loop.batch_in_epoch, self.steps_per_epoch):
            if loop.step >= self.total:  # max_steps reached (also right after a resume)
                return True
            loss, n_real, gnorm, lr = self.train_step(batches[s * cfg.grad_accum:(s + 1) * cfg.grad_accum])
            loop.step, loop.batch_in_epoch = loop.step + 1, s + 1
            real += n_real
            # ``tok_s`` (the key the dashboard plots): real, non-padding tokens per second since the epoch began.
            tok_s = real / max(time.perf_counter() - t0, 1e-9)
            rt.log(step=loop.step, epoch=loop.epoch, split="train", loss=loss, ppl=math.exp(min(loss, 50.0)),
                   lr=lr, tok_s=tok_s, grad_norm=gnorm)
            rt.progress(step=loop.step, total_steps=self.total, epoch=loop.epoch, total_epochs=cfg.epochs,
                        loss=loss, tok_s=tok_s)
            if rt.should_stop():
                rt.save(self.checkpoint(loop), "latest.pt")
                return False
            if cfg.checkpoint_every and loop.step % cfg.checkpoint_every == 0:
                rt.save(self.checkpoint(loop), "latest.pt")
        return True

    def end_epoch(self, loop: Loop) -> bool:
        """Validate, checkpoint, plot; True when training should go on."""
        from core.curves import plot_curves

        cfg, rt = self.cfg, self.rt
        loop.epoch, loop.batch_in_epoch = loop.epoch + 1, 0
        val = evaluate(self.hooks, self.model, self.splits["val"], cfg.batch_size, self.device, self.amp)
        rt.log(step=loop.step, epoch=loop.epoch, split="val", **val)
        improved = loop.best is None or val["loss"] < loop.best
        loop.best, loop.bad_epochs = (val["loss"], 0) if improved else (loop.best, loop.bad_epochs + 1)
        rt.event("epoch_end", epoch=loop.epoch, step=loop.step, val_loss=val["loss"], val_ppl=val["ppl"])
        rt.progress(step=loop.step, total_steps=self.total, epoch=loop.epoch, total_epochs=cfg.epochs, force=True,
                    val_loss=val["loss"], val_ppl=val["ppl"])
        rt.save(self.checkpoint(loop, val), "latest.pt")
        if improved:
            rt.save(self.checkpoint(loop, val, full=False), "best_model.pt")
            if rt.is_main:
                self.hooks.on_best(self.model, self.tok, rt.paths.ckpt_dir)
        if rt.is_main:
            plot_curves(rt.paths.metrics, rt.paths.curves_png, {"loss": ["train/loss", "val/loss"],
                                                                "val perplexity": ["val/ppl"]}, train_ema=0.9)
        if cfg.patience and loop.bad_epochs >= cfg.patience:
            print(f"[ncanvas] early stop: no better val loss for {loop.bad_epochs} epochs", flush=True)
            rt.event("early_stop", epoch=loop.epoch, step=loop.step, patience=cfg.patience)
            return False
        return loop.epoch < cfg.epochs and loop.step < self.total

    def run(self, loop: Loop) -> None:
        if loop.step == 0:
            self.rt.save(self.checkpoint(loop), "epoch_0.pt")
        while loop.epoch < self.cfg.epochs and (loop.step < self.total or loop.batch_in_epoch > 0):
            if not self.run_epoch(loop):
                return  # stop requested: latest.pt is saved
            if not self.end_epoch(loop):
                break
        if self.splits["test"]:
            test = evaluate(self.hooks, self.model, self.splits["test"], self.cfg.batch_size, self.device, self.amp)
            self.rt.log(step=loop.step, epoch=loop.epoch, split="test", **test)
