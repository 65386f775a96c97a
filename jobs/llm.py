"""Job kind ``llm``: the from-scratch art-expert transformer (Llama-style, ~56M parameters at full size).

Trains on the explanation pairs with the prompt masked; the tokenizer (GPT-2's where it can be loaded: cached, or
downloaded when the hub answers a short probe and the job is not offline; else a byte-level BPE trained on the
corpus) travels inside every checkpoint, so generation needs no hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from core.explain.presets import PRESET_NOTES, PRESETS
from jobs.config import opt
from jobs.lmbase import LMTrainConfig

if TYPE_CHECKING:
    from jobs.lm import LMTask
    from jobs.runtime import JobRuntime


@dataclass
class LLMConfig(LMTrainConfig):
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = PRESETS  # jobs.config.with_preset applies them

    preset: str = opt("none", "a recipe for the options not given: " + "; ".join(
        f"{k}: {v}" for k, v in PRESET_NOTES.items()) + " (options given explicitly win)",
                      choices=("none", *PRESETS))
    tokenizer: str = opt("auto", "gpt2 (hub or cache), bpe (trained on the corpus, offline) or auto (gpt2 when "
                         "cached or quickly downloadable, else bpe; NCANVAS_OFFLINE=1 skips the hub)",
                         choices=("auto", "gpt2", "bpe"))
    bpe_vocab: int = opt(8192, "largest vocabulary of the corpus BPE", min=300, max=100_000)
    n_layer: int = opt(8, "transformer blocks", min=1, max=96)
    d_model: int = opt(512, "model width", min=8, max=8192)
    n_head: int = opt(8, "query heads", min=1, max=128)
    n_kv_head: int = opt(2, "key/value heads (GQA; must divide --n-head)", min=1, max=128)
    d_ff: int = opt(2048, "SwiGLU hidden size", min=8, max=65536)

    def validate(self) -> None:
        super().validate()
        from core.errors import NcanvasError

        if self.d_model % self.n_head or (self.d_model // self.n_head) % 2:
            raise NcanvasError("--d-model must be a multiple of --n-head with an even head size")
        if self.n_head % self.n_kv_head:
            raise NcanvasError("--n-kv-head must divide --n-head")


CONFIG = LLMConfig


def task(cfg: LLMConfig) -> LMTask:
    """The ``llm`` task: the shared LM task with OwnLMHooks."""
    from core.llm.hooks import OwnLMHooks
    from jobs.lm import LMTask

    return LMTask(cfg, OwnLMHooks(), "llm")


def train(rt: JobRuntime, cfg: LLMConfig) -> None:
    """Train under ``rt`` in this process (the entry point below, and tests)."""
    from jobs.loop import fit

    fit(rt, task(cfg))


if __name__ == "__main__":
    from jobs.loop import entry

    entry(CONFIG, task)
