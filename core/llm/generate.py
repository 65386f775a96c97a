"""Streaming generation for both explainer models, and the API the CLI and the dashboard call.

``load_explainer(path)`` accepts an ``llm`` or ``gpt2`` checkpoint (``.pt``), a run's checkpoint folder (its
``best_model.pt``) or a transformers folder (``best_model_hf/``). ``Explainer.stream(prompt, settings, cancel)``
yields text deltas as tokens arrive; multi-byte characters are never split across deltas.
Our model decodes with a KV cache (prefill once, then one token per step); GPT-2 uses its ``past_key_values``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
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
    """ArtExpertLM with a preallocated KV cache (or without, for the equivalence test)."""

    def __init__(self, model: Any, use_cache: bool = True) -> None:
        self.model, self.use_cache = model, use_cache
        self.max_len = model.cfg.block_size
        self.cache: Any = None
        self.ids = torch.empty(1, 0, dtype=torch.long)  # the tokens so far, without a cache (set by start)

    def start(self, ids: torch.Tensor) -> torch.Tensor:
        if self.use_cache:
            self.cache = self.model.new_cache(1, self.max_len)
            return self.model(ids, cache=self.cache, last_only=True)[:, -1]
        self.ids = ids
        return self.model(ids, last_only=True)[:, -1]

    def next(self, token: torch.Tensor) -> torch.Tensor:
        if self.use_cache:
            return self.model(token.view(1, 1), cache=self.cache)[:, -1]
        self.ids = torch.cat([self.ids, token.view(1, 1)], dim=1)
        return self.model(self.ids, last_only=True)[:, -1]


class _HFBackend:
    """A transformers causal LM with its own cache (``past_key_values``)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        cfg = model.config
        self.max_len = int(getattr(cfg, "n_positions", 0) or getattr(cfg, "max_position_embeddings", 1024))
        self.past: Any = None

    def start(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=ids, use_cache=True)
        self.past = out.past_key_values
        return out.logits[:, -1]

    def next(self, token: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=token.view(1, 1), past_key_values=self.past, use_cache=True)
        self.past = out.past_key_values
        return out.logits[:, -1]


class Explainer:
    """A loaded explainer model: ``stream`` text for a prompt, cancellable between tokens."""

    def __init__(self, model: Any, tokenizer: TextTokenizer, kind: str, name: str,
                 meta: dict[str, Any] | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.kind = kind  # "llm" or "gpt2"
        self.name = name
        self.meta = meta or {}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def context_len(self) -> int:
        """The most tokens the model attends over (its block size / position embeddings)."""
        return self._backend(use_cache=False).max_len

    def _backend(self, use_cache: bool = True) -> _OwnBackend | _HFBackend:
        return _OwnBackend(self.model, use_cache) if self.kind == "llm" else _HFBackend(self.model)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Full-sequence logits (B, T, V), for scoring."""
        return self.model(x) if self.kind == "llm" else self.model(input_ids=x, use_cache=False).logits

    def generate_ids(self, prompt: str, settings: SamplingSettings | None = None,
                     cancel: threading.Event | None = None, use_cache: bool = True) -> Iterator[int]:
        """New token ids, one at a time, until EOS, ``max_new_tokens``, the context limit or ``cancel``."""
        s = settings or SamplingSettings()
        ids = self.tokenizer.encode(prompt)
        backend = self._backend(use_cache)
        budget = min(s.max_new_tokens, backend.max_len - len(ids))
        if budget <= 0:
            raise NcanvasError(f"prompt is {len(ids)} tokens; the model's context is {backend.max_len}")
        dev = self.device
        gen = torch.Generator(device=dev).manual_seed(s.seed) if s.seed is not None else None
        prev = torch.tensor([ids], device=dev)
        # Inference mode is entered per step, never held across a yield: a suspended generator would otherwise
        # leak it into the caller (and, with two interleaved streams, leave it switched on for good).
        with torch.inference_mode():
            logits = backend.start(prev)
        for i in range(budget):
            if cancel is not None and cancel.is_set():
                return
            with torch.inference_mode():
                nxt = choose(process(logits, prev, s), s, gen)  # (1,)
            token = int(nxt)
            if token == self.tokenizer.eos_id:
                return
            yield token
            with torch.inference_mode():
                prev = torch.cat([prev, nxt.view(1, 1)], dim=1)
                if i + 1 < budget:
                    logits = backend.next(nxt)

    def stream(self, prompt: str, settings: SamplingSettings | None = None,
               cancel: threading.Event | None = None) -> Iterator[str]:
        """Text deltas of the explanation (leading newline of the training format dropped)."""
        dec = StreamDecoder(self.tokenizer)
        started = False
        for token in self.generate_ids(prompt, settings, cancel):
            delta = dec.push(token)
            if not started:
                delta = delta.lstrip()
                started = bool(delta)
            if delta:
                yield delta
        tail = dec.flush()
        if tail and (started or tail.strip()):
            yield tail if started else tail.lstrip()

    def explain(self, prompt: str, settings: SamplingSettings | None = None) -> str:
        """The whole explanation at once."""
        return "".join(self.stream(prompt, settings))


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
    return Explainer(model, from_hf(str(path), local_only=True), "gpt2", path.name)


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
    return Explainer(model.to(device), tokenizer, ckpt["kind"], name, meta)
