"""What training an explainer LM needs besides the loop (torch): the optimizer, the learning-rate schedule,
split evaluation, padding and token counting. The training itself runs in :mod:`jobs.loop` (task: ``jobs.lm``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from core.llm.data import TokenizedSplit, collate, epoch_batches
from core.llm.model import lm_loss


def lr_lambda(total: int, warmup: int, min_frac: float) -> Callable[[int], float]:
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
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for p in params:
        if id(p) in seen:  # tied weights appear once
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=device.type == "cuda")


@torch.no_grad()
def evaluate_split(logits_fn: Callable[[torch.Tensor], torch.Tensor], split: TokenizedSplit, batch_size: int,
                   device: torch.device, autocast: Callable[[], Any], limit: int = 0) -> dict[str, float]:
    """Token-weighted loss and perplexity on (the first ``limit`` of) a split; ``logits_fn(x)`` runs the model."""
    lengths = split.lengths[:limit] if limit else split.lengths
    total, count = 0.0, 0
    for idx in epoch_batches(lengths, batch_size, 0, 0, shuffle=False):
        x, y = (t.to(device) for t in collate(split, idx))
        with autocast():
            logits = logits_fn(x)
        n = int((y != -100).sum())
        total += lm_loss(logits, y).item() * n
        count += n
    loss = total / max(count, 1)
    return {"loss": loss, "ppl": math.exp(min(loss, 50.0))}


def compiles(cfg: Any, device: torch.device) -> bool:
    """Whether the model runs under torch.compile (``--compile``, honoured on CUDA only)."""
    return bool(cfg.compile) and device.type == "cuda"


def pad_multiple(compiled: bool, block_size: int) -> int:
    """What sequence lengths are rounded up to: 64 under torch.compile (a handful of shapes instead of a
    recompile per length) when that stays within the block size; else 1, since eager kernels (DDP included)
    take any length and every padded position is wasted compute."""
    return 64 if compiled and block_size % 64 == 0 else 1


def real_tokens(lengths: np.ndarray, idx: np.ndarray) -> int:
    """Input tokens of a micro-batch that are not padding: a sequence of ``n`` ids feeds ``n - 1`` inputs.
    Counted on the global (unsharded) indices, which every rank knows, so no all-reduce."""
    return int(lengths[idx].sum()) - len(idx)
