"""The explainer-LM task shared by the ``llm`` and ``gpt2`` kinds: data, masked loss, evaluation, checkpoints.

What differs between the two kinds (building model and tokenizer, what a checkpoint carries, the HF export) is a
hooks object from :mod:`core.llm.hooks`; the training itself is the one loop (:mod:`jobs.loop`). Torch is
imported inside the methods: the kind modules that name this task stay light.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.task import Evaluation, Task

if TYPE_CHECKING:
    from jobs.runtime import JobRuntime


class LMTask(Task):
    """Prompt -> explanation pairs, prompt tokens masked out of the loss, batches of similar length.

    Args:
        cfg: an ``LMTrainConfig`` (``jobs.lmbase``) subclass.
        hooks: ``OwnLMHooks()`` (``llm``) or ``GPT2Hooks()`` (``gpt2``).
        kind: the kind name.
    """

    def __init__(self, cfg: Any, hooks: Any, kind: str) -> None:
        super().__init__(cfg)
        self.hooks, self.kind = hooks, kind
        self.faith_cases: list[Any] = []
        if getattr(cfg, "select_by", "loss") == "faith":  # every grounding check together, higher is better
            self.select_key, self.select_higher = "faith", True

    def setup(self, rt: JobRuntime, ckpt: dict[str, Any] | None) -> None:
        from core.llm.data import load_records, tokenize
        from core.llm.training import compiles, pad_multiple

        cfg, t0 = self.cfg, time.perf_counter()
        self.device, self.paths = rt.device, rt.paths
        records = load_records(cfg.data, cfg.n_pairs, cfg.data_seed)
        if not records["train"] or not records["val"]:
            from core.errors import NcanvasError

            got = ", ".join(f"{k} {len(v)}" for k, v in records.items())
            raise NcanvasError(f"the explanation data needs train and val pairs; got {got}")
        model, self.tok = self.hooks.build(cfg, records, ckpt)
        if cfg.faith_eval:
            from core.explain.faithsets import validation_cases

            # fixed for the run (same seed, same prompts): the curve moves only with the model
            self.faith_cases = validation_cases(records, cfg.faith_eval)
        self.model = model.to(self.device)
        limit = {"train": None, "val": cfg.eval_max or None, "test": cfg.eval_max or None}
        self.splits = {s: tokenize(self.tok, recs[:limit[s]], cfg.block_size) for s, recs in records.items()}
        train = self.splits["train"]
        self.lengths, self.targets = train.lengths, train.lengths - train.n_prompt
        self.pad = pad_multiple(compiles(cfg, self.device), cfg.block_size)
        if rt.is_main:
            print(f"[ncanvas] {len(records['train'])} train / {len(records['val'])} val / {len(records['test'])} "
                  f"test pairs, tokenizer {self.tok.name} (vocab {self.tok.vocab_size}), {train.n_target_tokens()} "
                  f"target tokens per epoch; ready in {time.perf_counter() - t0:.1f}s", flush=True)

    def optimizers(self, total_steps: int) -> tuple[Any, Any]:
        import torch

        from core.llm.training import lr_lambda, make_optimizer

        cfg = self.cfg
        opt_ = make_optimizer(self.model, cfg, self.device)
        return opt_, torch.optim.lr_scheduler.LambdaLR(opt_, lr_lambda(total_steps, cfg.warmup_steps,
                                                                       cfg.min_lr_frac))

    def epoch_batches(self, epoch: int, batch_size: int) -> list[Any]:
        from core.llm.data import epoch_batches

        return epoch_batches(self.lengths, batch_size, self.cfg.seed, epoch)

    def weight(self, idx: Any) -> float:
        return float(self.targets[idx].sum())  # target tokens: accumulation weighs tokens, not sequences

    def count(self, idx: Any) -> int:
        from core.llm.training import real_tokens

        return real_tokens(self.lengths, idx)

    def loss(self, model: Any, idx: Any, step: int) -> Any:
        from core.llm.data import collate
        from core.llm.model import lm_loss

        x, y = collate(self.splits["train"], idx, self.pad)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        return lm_loss(self.hooks.logits(model, x), y)

    def train_metrics(self, loss: float) -> dict[str, float]:
        return {"ppl": math.exp(min(loss, 50.0))}

    def _score(self, split: str, autocast: Callable[[], Any]) -> dict[str, float]:
        from core.llm.training import evaluate_split

        self.model.eval()
        try:
            return evaluate_split(lambda x: self.hooks.logits(self.model, x), self.splits[split],
                                  self.cfg.batch_size, self.device, autocast)
        finally:
            self.model.train()

    def evaluate(self, autocast: Callable[[], Any]) -> Evaluation:
        self.autocast = autocast
        val = self._score("val", autocast)
        if self.faith_cases:
            val.update(self._faith())
        return Evaluation({"val": val})

    def _faith(self) -> dict[str, float]:
        """The greedy faithfulness eval (``core.llm.faith``) on the run's fixed validation prompts, within
        ``--faith-max-s``; its rates become val metrics (``faith``, ``faith_<check>``, ``faith_n``)."""
        from core.llm.faith import faith_metrics

        t0 = time.perf_counter()
        rates = faith_metrics(self.model, self.tok, self.faith_cases, kind=self.kind,
                              prompt_format=self.hooks.prompt_format, max_seconds=self.cfg.faith_max_s)
        n, wanted = int(rates.get("faith_n", 0)), len(self.faith_cases)
        cut = "" if n == wanted else f" (time budget --faith-max-s {self.cfg.faith_max_s:g} s: {n} of {wanted})"
        print(f"[ncanvas] faithfulness (greedy, {n} prompts): all checks {rates.get('faith', 0.0):.1%}, numbers "
              f"{rates.get('faith_numbers', 1.0):.1%}, labels {rates.get('faith_labels', 1.0):.1%} in "
              f"{time.perf_counter() - t0:.1f}s{cut}", flush=True)
        return rates

    def finish(self, loop: Any) -> None:
        """The test split, scored by ``best_model.pt``'s weights (the model the run hands over), not the last."""
        if not loop.rt.is_main or not self.splits["test"]:
            return
        loop.load_best()
        test = self._score("test", loop.amp.autocast)
        loop.rt.log(step=loop.state.step, epoch=loop.state.epoch, split="test", **test)
        loop.rt.event("test", step=loop.state.step, weights="best_model.pt", **{f"test_{k}": v for k, v in test.items()})

    def describe(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        config = dict(asdict(self.cfg), **self.hooks.config_extra(self.model))
        return self.hooks.arch(self.model), config, self.hooks.extra(self.model, self.tok)

    def on_best(self, ckpt_dir: Path) -> None:
        self.hooks.on_best(self.model, self.tok, ckpt_dir)
