"""Scoring an explainer on held-out pairs (``ncanvas eval-llm``): masked loss, perplexity and samples."""

from __future__ import annotations

import math
from typing import Any

import torch

from core.llm.data import collate, epoch_batches, load_records, tokenize
from core.llm.generate import Explainer
from core.llm.model import lm_loss
from core.llm.sampling import SamplingSettings


@torch.no_grad()
def score(ex: Explainer, records: list[dict[str, Any]], batch_size: int = 16) -> dict[str, float]:
    """Token-weighted loss and perplexity on the explanation tokens of ``records``."""
    block = min(int(ex.meta.get("config", {}).get("block_size") or 512), ex.context_len)
    split = tokenize(ex.tokenizer, records, block)
    total, count = 0.0, 0
    for idx in epoch_batches(split.lengths, batch_size, 0, 0, shuffle=False):
        x, y = (t.to(ex.device) for t in collate(split, idx))
        n = int((y != -100).sum())
        total += lm_loss(ex.logits(x), y).item() * n
        count += n
    loss = total / max(count, 1)
    return {"loss": loss, "ppl": math.exp(min(loss, 50.0)), "pairs": len(records), "tokens": count}


def evaluate_explainer(ex: Explainer, data: str = "", max_examples: int = 200, samples: int = 3,
                       settings: SamplingSettings | None = None) -> dict[str, Any]:
    """Val and test scores (first ``max_examples`` pairs each) and a few generated samples from test.

    Without ``data`` the pairs are regenerated from the checkpoint's own ``n_pairs``/``data_seed``, so the
    held-out split is the one the job held out.
    """
    cfg = ex.meta.get("config") or {}
    data = data or cfg.get("data", "")
    records = load_records(data, int(cfg.get("n_pairs", 100_000)), int(cfg.get("data_seed", 0)), ("val", "test"))
    out: dict[str, Any] = {"checkpoint": ex.name, "kind": ex.kind}
    for split in ("val", "test"):
        recs = records[split][:max_examples]
        out[split] = score(ex, recs) if recs else None
    settings = settings or SamplingSettings(max_new_tokens=160, temperature=0.7, seed=0)
    out["samples"] = [{"prompt": r["prompt"], "reference": r["explanation"], "generated": ex.explain(r["prompt"],
                       settings)} for r in records["test"][:samples]]
    return out
