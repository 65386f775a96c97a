"""Tokenizers for the explainer models, carried inside checkpoints as a JSON string (never a hub at inference).

``gpt2``: GPT-2's byte-level BPE, where transformers can load it (hub or local cache). ``bpe``: a byte-level BPE
trained on the corpus with ``tokenizers`` in seconds, offline. ``auto``: GPT-2's when it can be had without a long
wait, else ``bpe``. All are a ``tokenizers.Tokenizer`` underneath.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext

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


def train_bpe(texts: Iterable[str], vocab_size: int = 8192, split_digits: bool = True) -> TextTokenizer:
    """A byte-level BPE (GPT-2's scheme: any text round-trips) trained on ``texts``.

    ``split_digits``: every digit is its own token, never merged with its neighbours or with a leading space
    (the space becomes a token of its own). "(96.2%" in a prompt and " 96.2%" in an explanation then share the
    tokens ``9 6 . 2 %``, so writing a confidence is copying tokens, and the first digit alone tells the band
    ("6" is low). With GPT-2's merges the two were ``96`` and `` 96``, a pair per number to learn."""
    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
                         if split_digits else byte_level)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return TextTokenizer(tok, EOS, "bpe")


HUB_PROBE_S = 3.0     # the connectivity probe: name lookup and TCP connect to the hub (or the proxy)
HUB_REQUEST_S = 10    # per-request timeout of the download itself, once the probe said the hub is there


def offline() -> bool:
    """``NCANVAS_OFFLINE=1`` (or transformers' own ``HF_HUB_OFFLINE=1``): never ask the hub."""
    return os.environ.get("NCANVAS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"


def _hub_address() -> tuple[str, int]:
    """Where a hub request would first connect: the HTTPS proxy when one is set, else ``HF_ENDPOINT``'s host."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies

    url = getproxies().get("https") or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return parts.hostname or "huggingface.co", parts.port or (443 if parts.scheme == "https" else 80)


def hub_reachable(timeout: float = HUB_PROBE_S) -> bool:
    """Whether a TCP connection to the hub opens within ``timeout`` seconds, name lookup included.

    The lookup ignores socket timeouts (a machine without network can sit in the resolver for tens of seconds),
    so the probe runs in a daemon thread that is simply abandoned when it is late."""
    host, port = _hub_address()
    ok: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass  # unreachable is an answer, reported by the caller

    probe = threading.Thread(target=connect, name="hub-probe", daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(ok)


@contextmanager
def _short_hub_timeouts(seconds: int = HUB_REQUEST_S) -> Iterator[None]:
    """Cap huggingface_hub's per-request timeouts (read at call time from its constants) for one download."""
    import huggingface_hub.constants as hub

    names = [n for n in ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT") if hasattr(hub, n)]
    saved = {n: getattr(hub, n) for n in names}
    for n in names:
        setattr(hub, n, min(saved[n], seconds))
    try:
        yield
    finally:
        for n, v in saved.items():
            setattr(hub, n, v)


def from_hf(name_or_path: str, local_only: bool = False) -> TextTokenizer:
    """The fast tokenizer of a transformers model (``gpt2``, ``distilgpt2`` or a local folder)."""
    from transformers import AutoTokenizer

    local_only = local_only or offline()
    try:
        with _short_hub_timeouts() if not local_only else nullcontext():
            hf = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_only)
    except Exception as e:  # noqa: BLE001 - hub/network/format errors all mean "not loadable here"
        raise NcanvasError(f"cannot load tokenizer {name_or_path!r}: {str(e).splitlines()[0][:160]}") from None
    if not getattr(hf, "is_fast", False):
        raise NcanvasError(f"tokenizer {name_or_path!r} has no fast (tokenizers) backend")
    eos = hf.eos_token or EOS
    return TextTokenizer(hf.backend_tokenizer, eos, name_or_path)


def auto_tokenizer(texts: Iterable[str], vocab_size: int = 8192) -> TextTokenizer:
    """GPT-2's tokenizer when it can be had quickly (the local cache, else a download when the hub answers a
    fast probe), else a corpus BPE, with one log line saying why. Offline (``offline()``) the hub is never
    contacted, and an unreachable hub costs at most ``HUB_PROBE_S`` seconds, not the hub client's retries."""
    try:
        return from_hf("gpt2", local_only=True)
    except NcanvasError:
        pass  # not cached: maybe downloadable
    if offline():
        why = "offline (NCANVAS_OFFLINE / HF_HUB_OFFLINE) and GPT-2's tokenizer is not in the local cache"
    elif not hub_reachable():
        host, port = _hub_address()
        why = f"the Hugging Face hub ({host}:{port}) did not answer within {HUB_PROBE_S:.0f} s"
    else:
        try:
            tok = from_hf("gpt2")
            print("[ncanvas] --tokenizer auto: downloaded GPT-2's tokenizer from the hub", flush=True)
            return tok
        except NcanvasError as e:
            why = str(e)
    print(f"[ncanvas] --tokenizer auto: {why}; training a byte-level BPE on the corpus instead (a smaller "
          "vocabulary, so a smaller model than the 56.1M GPT-2-vocabulary one)", flush=True)
    return train_bpe(texts, vocab_size)


def build_tokenizer(kind: str, texts: Iterable[str], vocab_size: int = 8192) -> TextTokenizer:
    """``gpt2``, ``bpe`` or ``auto`` (GPT-2's where it can be loaded, else a corpus BPE: see ``auto_tokenizer``)."""
    if kind == "bpe":
        return train_bpe(texts, vocab_size)
    if kind == "gpt2":
        return from_hf("gpt2")
    if kind == "auto":
        return auto_tokenizer(texts, vocab_size)
    raise NcanvasError(f"unknown tokenizer {kind!r}; use gpt2, bpe or auto")
