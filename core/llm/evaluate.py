"""Scoring an explainer on held-out pairs (``ncanvas eval-llm``): masked loss, perplexity, samples, and the
faithfulness rates of ``core.llm.faith`` on three prompt sets."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
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
    settings = settings or SamplingSettings(max_new_tokens=320, temperature=0.7, seed=0)
    out["samples"] = [{"prompt": r["prompt"], "reference": r["explanation"], "generated": ex.explain(r["prompt"],
                       settings)} for r in records["test"][:samples]]
    return out


def faith_sets_report(ex: Explainer, data: str = "", n: int = 50, keep_failures: int = 2,
                      seed: int = 0) -> dict[str, Any]:
    """Faithfulness rates (``core.llm.faith``) on the three sets of ``core.explain.faithsets.build_sets`` (held-out
    test triples, low confidences, pairings absent from the job's training pairs; ``n``, ``n``, ``n // 2``
    prompts), greedy and with ``ncanvas explain``'s sampling defaults. The pairs are the job's own, regenerated
    as in :func:`evaluate_explainer` (train included, to know what it saw)."""
    from core.explain.faithsets import build_sets
    from core.llm.faith import GREEDY, SAMPLED, faithfulness

    cfg = ex.meta.get("config") or {}
    data = data or cfg.get("data", "")
    splits = ("train", "val", "test") if not data or (Path(data) / "train.jsonl").is_file() else ("val", "test")
    records = load_records(data, int(cfg.get("n_pairs", 100_000)), int(cfg.get("data_seed", 0)), splits)
    sets = build_sets(records, n, max(n // 2, 1), seed)
    sampled = dataclasses.replace(SAMPLED, seed=seed)
    out: dict[str, Any] = {"sets": {}}
    for name, cases in sets.items():
        out["sets"][name] = {"n": len(cases), **{
            d: faithfulness(ex, cases, st, keep_failures).to_dict() for d, st in (("greedy", GREEDY),
                                                                                 ("sampled", sampled))}}
    return out
