"""Options shared by the two explainer-LM job kinds (``llm`` and ``gpt2``). Light: no torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import NcanvasError
from jobs.config import LoopConfig, opt


@dataclass
class LMTrainConfig(LoopConfig):
    epochs: int = opt(20, "passes over the training pairs", min=1, max=10_000)
    patience: int = opt(5, "stop after this many evaluations without a better selection metric (--select-by; "
                        "0: never)", min=0)
    batch_size: int = opt(32, "sequences per micro-batch (on each process under DDP)", min=1, max=4096)
    lr: float = opt(3e-4, "peak AdamW learning rate", min=0.0, max=1.0)
    grad_clip: float = opt(1.0, "clip the gradient norm to this (0: off)", min=0.0, max=1e6)
    checkpoint_every: int = opt(500, "also save latest.pt every N steps inside an epoch (0: at evaluations only)",
                                min=0)
    data: str = opt("", "folder from `ncanvas data explanations` (empty: generate --n-pairs pairs in memory)",
                    path=True)
    n_pairs: int = opt(100_000, "pairs to generate when --data is empty", min=10, max=10_000_000)
    data_seed: int = opt(0, "seed of the generated pairs", min=0)
    block_size: int = opt(512, "longest training sequence in tokens", min=16, max=4096)
    min_lr_frac: float = opt(0.1, "cosine floor as a fraction of --lr", min=0.0, max=1.0)
    warmup_steps: int = opt(200, "linear warmup steps (capped at 10% of the schedule)", min=0)
    weight_decay: float = opt(0.1, "AdamW weight decay (matrices only)", min=0.0, max=1.0)
    eval_max: int = opt(2000, "val/test pairs scored per evaluation (0: all)", min=0)
    faith_eval: int = opt(64, "prompts of the greedy faithfulness eval at each evaluation (half held-out val "
                          "triples, a quarter low confidences, a quarter pairings absent from train), logged as val "
                          "faith and faith_<check> (0: off)", min=0, max=4096)
    faith_max_s: float = opt(300.0, "time budget of one faithfulness eval in seconds: no batch of prompts starts "
                             "after it (val faith_n says how many were scored)", min=1.0, max=86_400.0)
    select_by: str = opt("loss", "what best_model.pt and early stopping follow: val loss, or val faith (every "
                         "grounding check together; needs --faith-eval)", choices=("loss", "faith"))

    def validate(self) -> None:
        if self.data and not (Path(self.data).expanduser() / "train.jsonl").is_file():
            raise NcanvasError(f"--data {self.data}: no train.jsonl there (make one with `ncanvas data explanations`)")
        if self.select_by == "faith" and not self.faith_eval:
            raise NcanvasError("--select-by faith needs --faith-eval > 0 (the prompts it is measured on)")
