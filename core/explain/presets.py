"""Training recipes for the explainer LLMs, as plain option dicts (``ncanvas train llm --preset NAME``). No torch.

Each value is a ``jobs.llm.LLMConfig`` field; options given on the command line win over the preset's. ``small`` is
the README's small explainer for a machine without a GPU. Measured (docs/llm.md, "Before and after"; prompt format
3, dataset version 4): 33 min of wall time on this project's 2-core development machine of 2026-12-06 (23 min 48 s
on the one of 2026-12-05, dataset version 3), val ppl 1.13; all checks together 100 % greedy on held-out prompts
and on pairings absent from training, 84 % on the low-confidence set (low-confidence wording 94 %), mismatches
flagged 100 %.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "small": {
        "tokenizer": "bpe",      # the corpus BPE, single-digit tokens: numbers are copied token for token
        "n_pairs": 24_000,       # generated in memory (the generator's current version)
        "n_layer": 4, "d_model": 256, "n_head": 8, "n_kv_head": 2, "d_ff": 1024,
        "epochs": 2,             # ~1,316 optimizer steps
        "batch_size": 32,
        "lr": 1e-3,              # a 4.5M-parameter model takes (and needs) a higher peak than the 56M default
        "warmup_steps": 100,
        "min_lr_frac": 0.05,
        "patience": 0,           # two epochs: nothing to stop early
        "eval_every": 438,       # and at each epoch end: steps 438, 658, 876, 1314, 1316: a faithfulness curve
        "faith_eval": 64,        # greedy faithfulness eval at each evaluation
        "select_by": "faith",    # best_model.pt is the most faithful evaluation, not the lowest loss
    },
}

PRESET_NOTES: dict[str, str] = {
    "small": "4 layers x 256, corpus BPE with single digits, 24K pairs, 2 epochs at lr 1e-3 (cosine to 5%), "
             "best model by faithfulness; 24-33 min on 2 CPU cores",
}


def preset(name: str) -> dict[str, Any]:
    """The options of preset ``name`` (a copy); an unknown name is one error line listing the known ones."""
    from core.errors import NcanvasError

    if name not in PRESETS:
        raise NcanvasError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return dict(PRESETS[name])
