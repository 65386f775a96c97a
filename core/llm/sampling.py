"""Logit processing for sampling, with the order and semantics of transformers' ``generate``:
repetition penalty, then temperature, then top-k, then top-p. All functions take and return (B, V) logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.sampling_defaults import EXPLAIN


@dataclass
class SamplingSettings:
    max_new_tokens: int = EXPLAIN.max_new_tokens
    temperature: float = EXPLAIN.temperature  # 0: greedy (argmax), like do_sample=False
    top_k: int = EXPLAIN.top_k  # 0: off
    top_p: float = EXPLAIN.top_p  # 1.0: off
    repetition_penalty: float = EXPLAIN.repetition_penalty  # 1.0: off
    seed: int | None = EXPLAIN.seed  # same seed, same text

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


def repetition_penalty(logits: torch.Tensor, prev: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty as HF applies it: tokens seen in ``prev`` (B, L) get logit/p if positive, logit*p if not."""
    if penalty == 1.0 or prev.numel() == 0:
        return logits
    score = torch.gather(logits, 1, prev)
    score = torch.where(score < 0, score * penalty, score / penalty)
    return logits.scatter(1, prev, score)


def top_k_filter(logits: torch.Tensor, k: int, filter_value: float = -float("inf")) -> torch.Tensor:
    """Keep logits >= the k-th largest (ties at the boundary survive, as in HF's TopKLogitsWarper)."""
    if k <= 0 or k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1, None]
    return logits.masked_fill(logits < kth, filter_value)


def top_p_filter(logits: torch.Tensor, p: float, filter_value: float = -float("inf"),
                 min_keep: int = 1) -> torch.Tensor:
    """Nucleus filter as HF's TopPLogitsWarper: drop the low tail whose total probability is <= 1 - p."""
    if p >= 1.0:
        return logits
    sorted_logits, sorted_idx = torch.sort(logits, descending=False)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cum <= (1 - p)
    remove_sorted[..., -min_keep:] = False
    remove = remove_sorted.scatter(1, sorted_idx, remove_sorted)
    return logits.masked_fill(remove, filter_value)


def process(logits: torch.Tensor, prev: torch.Tensor, s: SamplingSettings) -> torch.Tensor:
    """All processing for one step; greedy decoding only applies the repetition penalty (as HF does)."""
    logits = repetition_penalty(logits.float(), prev, s.repetition_penalty)
    if s.greedy:
        return logits
    logits = logits / s.temperature
    return top_p_filter(top_k_filter(logits, s.top_k), s.top_p)


def choose(logits: torch.Tensor, s: SamplingSettings, gen: torch.Generator | None) -> torch.Tensor:
    """Next token ids (B,) from processed logits."""
    if s.greedy:
        return logits.argmax(dim=-1)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(1)
