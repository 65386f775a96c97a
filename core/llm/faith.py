"""Faithfulness of an explainer: generate for CNN outputs it never saw and score each text with the grounding
checker (``core.explain.check``).

The one function to call is :func:`faithfulness`; for the training loop, :func:`faith_metrics` takes the raw
model and tokenizer and returns flat val metrics::

    from core.explain.faithsets import validation_cases
    from core.llm.faith import faith_metrics

    cases = validation_cases(records, n=64)           # once per run (fixed prompts)
    ...
    val.update(faith_metrics(model, tok, cases, kind="llm", prompt_format=hooks.prompt_format))
    # -> {"faith": 0.97, "faith_labels": 1.0, "faith_numbers": 0.98, "faith_low_confidence": 0.94, ...,
    #     "faith_n": 64.0}

Greedy decoding by default (``GREEDY``: temperature 0, no repetition penalty, 320 new tokens), batched over prompts
of equal token length (``Explainer.generate_batch``): 64 prompts take seconds on a GPU and tens of seconds on two
CPU cores for the small model. Metric names: ``faith`` (every check together) and ``faith_<fact>`` for each fact
of the checker plus ``faith_labels`` (artist, style and genre all named); a fact that applied to no prompt (no low
confidence in the set) is left out rather than logged as 0 or 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from core.explain.check import FACTS, CheckResult, Output, check, rates
from core.explain.faithsets import prompt_of
from core.llm.generate import Explainer
from core.llm.sampling import SamplingSettings
from core.llm.tokenizer import TextTokenizer

GREEDY = SamplingSettings(max_new_tokens=320, temperature=0.0, repetition_penalty=1.0)
SAMPLED = SamplingSettings(max_new_tokens=320, temperature=0.8, top_k=50, top_p=0.95, repetition_penalty=1.1,
                           seed=0)  # `ncanvas explain`'s sampling defaults, seeded


@dataclass
class FaithReport:
    """Rates over one prompt set, its texts and verdicts, and the first failing samples."""

    rates: dict[str, float]
    n: int
    seconds: float
    texts: list[str] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, with_texts: bool = False) -> dict[str, Any]:
        out = {"rates": self.rates, "n": self.n, "seconds": round(self.seconds, 3), "failures": self.failures}
        if with_texts:
            out["texts"] = self.texts
        return out


def rate_dict(results: Sequence[CheckResult]) -> dict[str, float]:
    """``faith`` and ``faith_<fact>`` rates (facts that never applied are left out)."""
    r = rates(results)
    out: dict[str, float] = {"faith": r.rate() or 0.0} if results else {}
    for fact in ("labels", *FACTS):
        if (v := r.rate(fact)) is not None:
            out[f"faith_{fact}"] = v
    return out


def score_texts(cases: Sequence[Output], texts: Sequence[str], keep_failures: int = 5,
                prompts: Sequence[str] | None = None) -> FaithReport:
    """Check ``texts`` against ``cases`` (no generation): the report for texts made elsewhere."""
    results = [check(t, c) for t, c in zip(texts, cases)]
    failures = [{"prompt": prompts[i] if prompts else prompt_of(cases[i]), "text": texts[i],
                 "reasons": res.reasons} for i, res in enumerate(results) if not res.passed][:keep_failures]
    return FaithReport(rate_dict(results), len(results), 0.0, list(texts), results, failures)


def faithfulness(ex: Explainer, cases: Sequence[Output], settings: SamplingSettings | None = None,
                 keep_failures: int = 5, batch_size: int = 32, max_seconds: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> FaithReport:
    """Generate one explanation per case (greedy unless ``settings`` say otherwise) and score them.

    Args:
        ex: a loaded explainer (``core.llm.generate.load_explainer`` or :func:`explainer_for`).
        cases: CNN outputs (``core.explain.faithsets`` builds the standard sets).
        settings: decoding settings; default :data:`GREEDY`.
        keep_failures: how many failing samples (prompt, text, reasons) the report keeps.
        batch_size: prompts decoded together.
        max_seconds: a time budget: once spent, no further batch starts (at least one always runs), and the
            report covers the cases decoded (``n``). None: no budget.
        clock: the time source of the budget (injected by tests).
    """
    t0 = clock()
    until = None if max_seconds is None else (lambda: clock() - t0 > max_seconds)
    prompts = [prompt_of(c) for c in cases]
    texts = ex.generate_batch(prompts, settings or GREEDY, batch_size, until=until)
    done = [i for i, t in enumerate(texts) if t is not None]
    report = score_texts([cases[i] for i in done], [texts[i] or "" for i in done], keep_failures,
                         [prompts[i] for i in done])
    report.seconds = clock() - t0
    return report


def explainer_for(model: torch.nn.Module, tokenizer: TextTokenizer, kind: str = "llm",
                  prompt_format: int | None = None) -> Explainer:
    """An :class:`Explainer` around a model being trained (pass the raw module, not a DDP or compiled wrapper)."""
    from core.explain import PROMPT_FORMAT

    return Explainer(model, tokenizer, kind, "training", prompt_format=prompt_format or PROMPT_FORMAT)


def faith_metrics(model: torch.nn.Module, tokenizer: TextTokenizer, cases: Sequence[Output], kind: str = "llm",
                  prompt_format: int | None = None, settings: SamplingSettings | None = None,
                  batch_size: int = 32, max_seconds: float | None = None,
                  clock: Callable[[], float] = time.monotonic) -> dict[str, float]:
    """Faithfulness rates of a model mid-training, as flat val metrics (see the module docstring) plus
    ``faith_n``, the prompts scored (fewer than ``cases`` when ``max_seconds`` ran out); the model is put back in
    training mode if it was in it."""
    was_training = model.training
    try:
        rep = faithfulness(explainer_for(model, tokenizer, kind, prompt_format), cases, settings,
                           batch_size=batch_size, max_seconds=max_seconds, clock=clock)
        return dict(rep.rates, faith_n=float(rep.n))
    finally:
        model.train(was_training)
