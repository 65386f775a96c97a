"""Tokenised explanation pairs for causal-LM training: prompt masked, length-bucketed batches.

A training sequence is ``prompt ids + ids("\\n" + explanation) + [eos]``; targets on prompt positions are -100,
so the loss (and the gradient) covers only the explanation. Generation feeds ``ids(prompt)`` exactly as here.
Batches group examples of similar length (sorted inside shuffled chunks), so padding is a few percent, and each
example keeps its own positions 0..T (no cross-document attention, as at inference). The batch order of an epoch
is a pure function of (seed, epoch): a resumed job skips exactly the batches it already did.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.llm.tokenizer import TextTokenizer

IGNORE = -100
BUCKET_CHUNKS = 64  # batches per sorted chunk: large enough to group lengths, small enough to stay shuffled


def example_text(explanation: str) -> str:
    """What follows the prompt in a training sequence."""
    return "\n" + explanation


@dataclass
class TokenizedSplit:
    seqs: list[np.ndarray]  # int32 token ids, prompt + explanation + eos
    n_prompt: np.ndarray    # prompt length of each sequence
    pad_id: int

    def __len__(self) -> int:
        return len(self.seqs)

    @functools.cached_property
    def lengths(self) -> np.ndarray:
        """Sequence lengths (computed once: the trainer reads them every step to count real tokens)."""
        return np.fromiter((len(s) for s in self.seqs), dtype=np.int64, count=len(self.seqs))

    def n_target_tokens(self) -> int:
        return int((self.lengths - self.n_prompt).sum())


def tokenize(tok: TextTokenizer, records: Sequence[dict[str, Any]], block_size: int) -> TokenizedSplit:
    """Tokenise ``{prompt, explanation}`` records; sequences longer than ``block_size + 1`` are cut."""
    prompts = tok.encode_batch([r["prompt"] for r in records])
    answers = tok.encode_batch([example_text(r["explanation"]) for r in records])
    seqs, n_prompt = [], []
    for p, a in zip(prompts, answers):
        seq = np.asarray(p + a + [tok.eos_id], dtype=np.int32)[: block_size + 1]
        seqs.append(seq)
        n_prompt.append(min(len(p), len(seq) - 1))
    return TokenizedSplit(seqs, np.asarray(n_prompt, dtype=np.int64), tok.eos_id)


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int,
                  shuffle: bool = True) -> list[np.ndarray]:
    """Index batches of similar length; deterministic in (seed, epoch)."""
    n = len(lengths)
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(n)
    chunk = batch_size * BUCKET_CHUNKS
    batches: list[np.ndarray] = []
    for s in range(0, n, chunk):
        c = perm[s:s + chunk]
        c = c[np.argsort(lengths[c], kind="stable")]
        batches += [c[i:i + batch_size] for i in range(0, len(c), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(split: TokenizedSplit, idx: np.ndarray, pad_multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (B, T) right-padded with eos, targets (B, T) shifted by one, -100 on prompt and padding.

    ``pad_multiple`` rounds T up (e.g. 64 under torch.compile: a handful of shapes instead of one per length).
    """
    T = max(len(split.seqs[i]) for i in idx) - 1
    T = -(-T // pad_multiple) * pad_multiple
    x = np.full((len(idx), T), split.pad_id, dtype=np.int64)
    y = np.full((len(idx), T), IGNORE, dtype=np.int64)
    for row, i in enumerate(idx):
        seq, n_p = split.seqs[i], int(split.n_prompt[i])
        x[row, :len(seq) - 1] = seq[:-1]
        y[row, n_p - 1:len(seq) - 1] = seq[n_p:]  # first target: the first token after the prompt
    return torch.from_numpy(x), torch.from_numpy(y)


def load_records(data: str, n_pairs: int, seed: int,
                 splits: tuple[str, ...] = ("train", "val", "test")) -> dict[str, list[dict[str, Any]]]:
    """Splits from a ``ncanvas data explanations`` folder (only ``splits`` are read), or all generated in memory
    when ``data`` is empty."""
    from core.explain.dataset import generate_splits, read_split

    if data:
        return {s: read_split(data, s) for s in splits}
    return generate_splits(n_pairs, seed)
