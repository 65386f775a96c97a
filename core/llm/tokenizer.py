"""Tokenizers for the explainer models, carried inside checkpoints as a JSON string (never a hub at inference).

``gpt2``: GPT-2's byte-level BPE, where transformers can load it (hub or local cache). ``bpe``: a byte-level BPE
trained on the corpus with ``tokenizers`` in seconds, offline. Both are a ``tokenizers.Tokenizer`` underneath.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from core.errors import NcanvasError

EOS = "<|endoftext|>"


class TextTokenizer:
    """A byte-level BPE with an end-of-text token; serialises to one JSON string."""

    def __init__(self, tok: Tokenizer, eos_token: str = EOS, name: str = "bpe") -> None:
        self.tok = tok
        self.name = name
        self.eos_token = eos_token
        eos = tok.token_to_id(eos_token)
        if eos is None:
            raise NcanvasError(f"tokenizer has no end-of-text token {eos_token!r}")
        self.eos_id: int = eos

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)

    def to_json(self) -> str:
        return self.tok.to_str()

    @classmethod
    def from_json(cls, text: str, eos_token: str = EOS, name: str = "bpe") -> TextTokenizer:
        return cls(Tokenizer.from_str(text), eos_token, name)


def train_bpe(texts: Iterable[str], vocab_size: int = 8192) -> TextTokenizer:
    """A byte-level BPE (GPT-2's scheme: any text round-trips) trained on ``texts``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return TextTokenizer(tok, EOS, "bpe")


def offline() -> bool:
    """``NCANVAS_OFFLINE=1`` (or transformers' own ``HF_HUB_OFFLINE=1``): never ask the hub."""
    return os.environ.get("NCANVAS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"


def from_hf(name_or_path: str, local_only: bool = False) -> TextTokenizer:
    """The fast tokenizer of a transformers model (``gpt2``, ``distilgpt2`` or a local folder)."""
    from transformers import AutoTokenizer

    try:
        hf = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_only or offline())
    except Exception as e:  # noqa: BLE001 - hub/network/format errors all mean "not loadable here"
        raise NcanvasError(f"cannot load tokenizer {name_or_path!r}: {str(e).splitlines()[0][:160]}") from None
    if not getattr(hf, "is_fast", False):
        raise NcanvasError(f"tokenizer {name_or_path!r} has no fast (tokenizers) backend")
    eos = hf.eos_token or EOS
    return TextTokenizer(hf.backend_tokenizer, eos, name_or_path)


def build_tokenizer(kind: str, texts: Iterable[str], vocab_size: int = 8192) -> TextTokenizer:
    """``gpt2``, ``bpe`` or ``auto`` (GPT-2's where it loads, else a corpus BPE)."""
    if kind == "bpe":
        return train_bpe(texts, vocab_size)
    if kind == "gpt2":
        return from_hf("gpt2")
    if kind == "auto":  # GPT-2's only when it is cached: no hub round trips (and retries) on an offline machine
        try:
            return from_hf("gpt2", local_only=True)
        except NcanvasError:
            print("[ncanvas] GPT-2's tokenizer is not in the local transformers cache; training a byte-level BPE "
                  "on the corpus (--tokenizer gpt2 downloads it)", flush=True)
            return train_bpe(texts, vocab_size)
    raise NcanvasError(f"unknown tokenizer {kind!r}; use gpt2, bpe or auto")
