"""Streaming generation for both explainer models, and the API the CLI and the dashboard call.

``load_explainer(path)`` accepts an ``llm`` or ``gpt2`` checkpoint (``.pt``), a run's checkpoint folder (its
``best_model.pt``) or a transformers folder (``best_model_hf/``). ``Explainer.stream(prompt, settings, cancel)``
yields text deltas as tokens arrive; multi-byte characters are never split across deltas.
Our model decodes with a KV cache (prefill once, then one token per step); GPT-2 with transformers' Cache API (a
``DynamicCache`` it fills in place). A prompt in the dataset's format is given to each model in the format version
its checkpoint was trained on (``Explainer.prompt_format``). ``generate_batch`` decodes many prompts at once
(grouped by length, so no padding or attention mask is needed): the faithfulness eval's fast path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from core.errors import CheckpointError, NcanvasError
from core.llm.sampling import SamplingSettings, choose, process
from core.llm.tokenizer import TextTokenizer


class StreamDecoder:
    """Token ids in, text deltas out; holds back a partial UTF-8 sequence until its last byte arrives."""

    def __init__(self, tok: TextTokenizer) -> None:
        self.tok = tok
        self.ids: list[int] = []
        self.text = ""

    def push(self, token: int) -> str:
        self.ids.append(token)
        full = self.tok.decode(self.ids)
        if full.endswith("\ufffd"):  # the byte-level decoder's mark for an incomplete character
            return ""
        delta, self.text = full[len(self.text):], full
        return delta

    def flush(self) -> str:
        full = self.tok.decode(self.ids)
        delta, self.text = full[len(self.text):], full
        return delta


class _OwnBackend:
    """ArtExpertLM with a preallocated KV cache (or without, for the equivalence test). Rows of a batch must
    have prompts of one length (positions are shared)."""

    def __init__(self, model: Any, use_cache: bool = True) -> None:
        self.model, self.use_cache = model, use_cache
        self.max_len = model.cfg.block_size
        self.cache: Any = None
        self.ids = torch.empty(1, 0, dtype=torch.long)  # the tokens so far, without a cache (set by start)

    def start(self, ids: torch.Tensor) -> torch.Tensor:  # ids (B, T) -> logits (B, V)
        if self.use_cache:
            self.cache = self.model.new_cache(ids.size(0), self.max_len)
            return self.model(ids, cache=self.cache, last_only=True)[:, -1]
        self.ids = ids
        return self.model(ids, last_only=True)[:, -1]

    def next(self, token: torch.Tensor) -> torch.Tensor:  # token (B,) -> logits (B, V)
        if self.use_cache:
            return self.model(token.view(-1, 1), cache=self.cache)[:, -1]
        self.ids = torch.cat([self.ids, token.view(-1, 1)], dim=1)
        return self.model(self.ids, last_only=True)[:, -1]


def _cache_keyword(model: Any) -> str:
    """transformers 5.x takes the cache as ``cache=`` and warns that ``past_key_values=`` goes away; older
    releases know only ``past_key_values``. Both accept a ``Cache`` object."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class _HFBackend:
    """A transformers causal LM with a ``DynamicCache`` it fills in place (the Cache API, no legacy tuples)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        cfg = model.config
        self.max_len = int(getattr(cfg, "n_positions", 0) or getattr(cfg, "max_position_embeddings", 1024))
        self.key = _cache_keyword(model)
        self.cache: Any = None

    def start(self, ids: torch.Tensor) -> torch.Tensor:
        from transformers import DynamicCache

        try:
            self.cache = DynamicCache(config=self.model.config)
        except TypeError:  # releases whose DynamicCache takes no config
            self.cache = DynamicCache()
        return self.model(input_ids=ids, use_cache=True, **{self.key: self.cache}).logits[:, -1]

    def next(self, token: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=token.view(-1, 1), use_cache=True, **{self.key: self.cache}).logits[:, -1]


# A constraint sees the ids generated so far and the processed logits (1, V) of the next step and returns them
# with the forbidden tokens masked (core.llm.grounded.GroundingConstraint is one).
Constraint = Callable[[list[int], torch.Tensor], torch.Tensor]


class Explainer:
    """A loaded explainer model: ``stream`` text for a prompt, cancellable between tokens."""

    def __init__(self, model: Any, tokenizer: TextTokenizer, kind: str, name: str,
                 meta: dict[str, Any] | None = None, prompt_format: int = 1) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.kind = kind  # "llm" or "gpt2"
        self.name = name
        self.meta = meta or {}
        self.prompt_format = prompt_format  # the prompt version it was trained on (1: before versions existed)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def context_len(self) -> int:
        """The most tokens the model attends over (its block size / position embeddings)."""
        return self._backend(use_cache=False).max_len

    def _backend(self, use_cache: bool = True) -> _OwnBackend | _HFBackend:
        return _OwnBackend(self.model, use_cache) if self.kind == "llm" else _HFBackend(self.model)

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of ``prompt`` as this model was trained to read it (its prompt format version)."""
        from core.explain import reformat_prompt

        return self.tokenizer.encode(reformat_prompt(prompt, self.prompt_format))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Full-sequence logits (B, T, V), for scoring."""
        return self.model(x) if self.kind == "llm" else self.model(input_ids=x, use_cache=False).logits

    def generate_ids(self, prompt: str, settings: SamplingSettings | None = None,
                     cancel: threading.Event | None = None, use_cache: bool = True,
                     constraint: Constraint | None = None) -> Iterator[int]:
        """New token ids, one at a time, until EOS, ``max_new_tokens``, the context limit or ``cancel``;
        ``constraint`` masks the logits of each step after sampling's processing."""
        s = settings or SamplingSettings()
        ids = self.prompt_ids(prompt)
        backend = self._backend(use_cache)
        budget = min(s.max_new_tokens, backend.max_len - len(ids))
        if budget <= 0:
            raise NcanvasError(f"prompt is {len(ids)} tokens; the model's context is {backend.max_len}")
        dev = self.device
        gen = torch.Generator(device=dev).manual_seed(s.seed) if s.seed is not None else None
        prev = torch.tensor([ids], device=dev)
        out: list[int] = []
        # Inference mode is entered per step, never held across a yield: a suspended generator would otherwise
        # leak it into the caller (and, with two interleaved streams, leave it switched on for good).
        with torch.inference_mode():
            logits = backend.start(prev)
        for i in range(budget):
            if cancel is not None and cancel.is_set():
                return
            with torch.inference_mode():
                scores = process(logits, prev, s)
                if constraint is not None:
                    scores = constraint(out, scores)
                nxt = choose(scores, s, gen)  # (1,)
            token = int(nxt)
            if token == self.tokenizer.eos_id:
                return
            out.append(token)
            yield token
            with torch.inference_mode():
                prev = torch.cat([prev, nxt.view(1, 1)], dim=1)
                if i + 1 < budget:
                    logits = backend.next(nxt)

    def stream(self, prompt: str, settings: SamplingSettings | None = None,
               cancel: threading.Event | None = None, constraint: Constraint | None = None) -> Iterator[str]:
        """Text deltas of the explanation (leading newline of the training format dropped)."""
        dec = StreamDecoder(self.tokenizer)
        started = False
        for token in self.generate_ids(prompt, settings, cancel, constraint=constraint):
            delta = dec.push(token)
            if not started:
                delta = delta.lstrip()
                started = bool(delta)
            if delta:
                yield delta
        tail = dec.flush()
        if tail and (started or tail.strip()):
            yield tail if started else tail.lstrip()

    def explain(self, prompt: str, settings: SamplingSettings | None = None,
                constraint: Constraint | None = None) -> str:
        """The whole explanation at once."""
        return "".join(self.stream(prompt, settings, constraint=constraint))

    def generate_batch(self, prompts: Sequence[str], settings: SamplingSettings | None = None,
                       batch_size: int = 32, until: Callable[[], bool] | None = None) -> list[str | None]:
        """Explanations of many prompts, decoded in batches of prompts with the same token length (so rows share
        positions and need no mask): several times faster than one by one on a CPU. Sampling (not greedy) draws
        from one generator per batch, so a text depends on its batch-mates; greedy texts equal ``explain``'s.

        ``until``: asked before each batch after the first; once it says True no further batch starts, and the
        prompts left out get ``None`` (a time budget: the training loop's faithfulness eval)."""
        s = settings or SamplingSettings()
        encoded = [self.prompt_ids(p) for p in prompts]
        by_len: dict[int, list[int]] = {}
        for i, ids in enumerate(encoded):
            by_len.setdefault(len(ids), []).append(i)
        texts: list[str | None] = [None] * len(prompts)
        batches = [idx[k:k + batch_size] for idx in by_len.values() for k in range(0, len(idx), batch_size)]
        for n, rows in enumerate(batches):
            if n and until is not None and until():
                break
            for i, ids in zip(rows, self._decode_rows([encoded[i] for i in rows], s)):
                texts[i] = self.tokenizer.decode(ids).strip()
        return texts

    @torch.inference_mode()
    def _decode_rows(self, rows: list[list[int]], s: SamplingSettings) -> list[list[int]]:
        """New ids of each row (equal-length prompts), until every row has met EOS or the budget."""
        backend, dev = self._backend(), self.device
        budget = min(s.max_new_tokens, backend.max_len - len(rows[0]))
        if budget <= 0:
            raise NcanvasError(f"prompt is {len(rows[0])} tokens; the model's context is {backend.max_len}")
        gen = torch.Generator(device=dev).manual_seed(s.seed) if s.seed is not None else None
        prev = torch.tensor(rows, device=dev)  # (B, T)
        logits = backend.start(prev)
        done = torch.zeros(len(rows), dtype=torch.bool, device=dev)
        out: list[list[int]] = [[] for _ in rows]
        for i in range(budget):
            nxt = choose(process(logits, prev, s), s, gen)  # (B,)
            nxt = torch.where(done, torch.full_like(nxt, self.tokenizer.eos_id), nxt)
            done |= nxt == self.tokenizer.eos_id
            for r, t in enumerate(nxt.tolist()):
                if not done[r]:
                    out[r].append(t)
            if bool(done.all()) or i + 1 == budget:
                break
            prev = torch.cat([prev, nxt.view(-1, 1)], dim=1)
            logits = backend.next(nxt)
        return out


def _resolve(path: Path) -> Path:
    if path.is_dir() and not (path / "config.json").is_file():
        for name in ("best_model.pt", "latest.pt"):
            if (path / name).is_file():
                return path / name
        raise NcanvasError(f"{path} holds no best_model.pt, latest.pt or transformers model")
    return path


def _load_hf_dir(path: Path, device: str | torch.device) -> Explainer:
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from core.llm.tokenizer import from_hf

    hf_logging.disable_progress_bar()  # a "Loading weights" bar would interleave with the streamed text
    hf_logging.set_verbosity_error()  # its notes about the config would surround the one line of output
    if not ((path / "tokenizer.json").is_file() or (path / "vocab.json").is_file()):
        raise NcanvasError(f"{path}: no tokenizer files (tokenizer.json, or vocab.json and merges.txt); save the "
                           "tokenizer into the folder too (tokenizer.save_pretrained)")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - any loading problem is one line for the user
        raise NcanvasError(f"{path}: not a loadable transformers model ({str(e).splitlines()[0][:120]})") from None
    # transformers wraps ``to`` with functools.wraps(nn.Module.to), which typeshed types as unbound (self = device)
    model = model.to(device)  # type: ignore[arg-type]
    return Explainer(model, from_hf(str(path), local_only=True), "gpt2", path.name,
                     prompt_format=hf_dir_prompt_format(path))


def hf_dir_prompt_format(path: Path) -> int:
    """The prompt format a ``best_model_hf`` folder was trained on (its ``ncanvas.json``; 1 when absent: a folder
    exported before formats had versions, or any plain transformers model)."""
    import json

    try:
        return int(json.loads((path / "ncanvas.json").read_text(encoding="utf-8")).get("prompt_format", 1))
    except (OSError, ValueError, AttributeError):
        return 1


def load_explainer(path: str | Path, device: str | torch.device = "cpu") -> Explainer:
    """An :class:`Explainer` from an ``llm``/``gpt2`` checkpoint, a run's checkpoint folder or an HF folder."""
    from core.checkpoint import check_finite_weights, load_checkpoint, load_model_state
    from core.llm.hooks import gpt2_from_ckpt, tokenizer_from_ckpt
    from core.llm.model import ArtExpertLM, LMConfig

    path = _resolve(Path(path).expanduser())
    if path.is_dir():
        return _load_hf_dir(path, device)
    ckpt = load_checkpoint(path, kind=("llm", "gpt2"))
    if "tokenizer_json" not in ckpt.get("extra", {}):
        raise NcanvasError(f"{path} carries no tokenizer")
    check_finite_weights(ckpt, path)
    try:
        tokenizer = tokenizer_from_ckpt(ckpt)
    except Exception as e:  # noqa: BLE001 - the tokenizers library raises a bare Exception for bad JSON
        raise CheckpointError(f"{path}: its tokenizer is damaged ({str(e).splitlines()[0][:100]})") from None
    model: torch.nn.Module
    if ckpt["kind"] == "llm":
        model = ArtExpertLM(LMConfig(**ckpt["config"]["model"]))
        load_model_state(model, ckpt, path)
    else:
        model = gpt2_from_ckpt(ckpt)
    name = f"{path.parent.name}/{path.name}"
    meta = {"step": ckpt.get("step"), "epoch": ckpt.get("epoch"), "arch": ckpt.get("arch"),
            "config": ckpt.get("config"), "best_metric": ckpt.get("best_metric")}
    return Explainer(model.to(device), tokenizer, ckpt["kind"], name, meta,
                     prompt_format=int(ckpt["extra"].get("prompt_format", 1)))
