"""Job kind ``gpt2``: fine-tune a GPT-2 (``gpt2``, ``distilgpt2`` or a local folder) on the explanation pairs.

Same data, masking, metrics and checkpoints as ``llm``, plus ``best_model_hf/`` written with ``save_pretrained``
(loadable by plain transformers). Checkpoints carry the model config and tokenizer, so they load offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobs.config import opt
from jobs.lmbase import LMTrainConfig

if TYPE_CHECKING:
    from jobs.lm import LMTask
    from jobs.runtime import JobRuntime


@dataclass
class GPT2Config(LMTrainConfig):
    base: str = opt("gpt2", "gpt2, distilgpt2 (hub or cache) or a local folder saved with save_pretrained",
                    path="or-name")
    epochs: int = opt(10, "passes over the training pairs", min=1, max=10_000)
    patience: int = opt(3, "stop after this many evaluations without a better selection metric (--select-by; "
                        "0: never)", min=0)
    batch_size: int = opt(16, "sequences per micro-batch", min=1, max=4096)
    lr: float = opt(2e-5, "peak AdamW learning rate", min=0.0, max=1.0)
    weight_decay: float = opt(0.01, "AdamW weight decay (matrices only)", min=0.0, max=1.0)

    def validate(self) -> None:
        super().validate()
        from pathlib import Path

        from core.errors import NcanvasError

        looks_local = "/" in self.base or self.base.startswith(".") or Path(self.base).expanduser().exists()
        if looks_local and not (Path(self.base).expanduser() / "config.json").is_file():
            raise NcanvasError(f"--base {self.base}: no config.json there (a folder saved with save_pretrained)")


CONFIG = GPT2Config


def task(cfg: GPT2Config) -> LMTask:
    """The ``gpt2`` task: the shared LM task with GPT2Hooks."""
    from core.llm.hooks import GPT2Hooks
    from jobs.lm import LMTask

    return LMTask(cfg, GPT2Hooks(), "gpt2")


def train(rt: JobRuntime, cfg: GPT2Config) -> None:
    """Train under ``rt`` in this process (the entry point below, and tests)."""
    from jobs.loop import fit

    fit(rt, task(cfg))


if __name__ == "__main__":
    from jobs.loop import entry

    entry(CONFIG, task)
