"""The prompt sets a faithfulness eval runs on: CNN outputs the explainer never saw explained. No torch.

- ``heldout_cases``: triples of a held-out split (val/test: never in train), with the confidences drawn for them.
- ``low_cases``: the same triples with one, two or all three heads at 60-65 %, the band where an explanation must
  say "low" and where stock numbers ("80.7 %") are most tempting.
- ``unseen_cases``: artist/movement pairings absent from the training pairs (the generator holds a fifth of the
  unrelated pairings out of train, so some always exist): a mismatch the model has to flag from the tables it
  learned, not from memory.
- ``validation_cases``: a small mix of all three for the per-validation metric during training.

Every builder is deterministic for its seed and returns :class:`core.explain.check.Output` objects (``prompt_of``
gives the prompt).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from core.explain import format_prompt
from core.explain.check import Output
from core.explain.labels import ARTIST_TABLE, ARTISTS, STYLES

LOW_RANGE = (60.0, 65.0)
SETS = ("heldout", "low", "unseen")


def prompt_of(out: Output, version: int | None = None) -> str:
    """The explainer prompt for a CNN output (the current format unless ``version`` says otherwise)."""
    a, s, g = out.confidences
    kw = {} if version is None else {"version": version}
    return format_prompt(out.artist, a, out.style, s, out.genre, g, **kw)


def record_output(rec: dict[str, Any]) -> Output:
    """The CNN output a dataset record explains."""
    return Output(rec["artist"], rec["style"], rec["genre"],
                  (float(rec["a_conf"]), float(rec["s_conf"]), float(rec["g_conf"])))


def _distinct_triples(records: Iterable[dict[str, Any]]) -> list[Output]:
    seen: dict[tuple[str, str, str], Output] = {}
    for r in records:
        seen.setdefault((r["artist"], r["style"], r["genre"]), record_output(r))
    return list(seen.values())


def _sample(items: Sequence[Any], n: int, seed: int) -> list[Any]:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items[:n]


def heldout_cases(held_out: Iterable[dict[str, Any]], n: int = 50, seed: int = 0) -> list[Output]:
    """``n`` distinct (artist, style, genre) triples of held-out records, each with its own confidences."""
    return _sample(_distinct_triples(held_out), n, seed)


def low_cases(held_out: Iterable[dict[str, Any]], n: int = 50, seed: int = 0) -> list[Output]:
    """Held-out triples with low confidences (60-65 %): the artist, the style, the genre, then all three, in
    turn; the other heads keep their own values."""
    rng = random.Random(seed + 1)
    out = []
    for i, base in enumerate(heldout_cases(held_out, n, seed)):
        low = ({0}, {1}, {2}, {0, 1, 2})[i % 4]
        confs = tuple(round(rng.uniform(*LOW_RANGE), 1) if h in low else c for h, c in enumerate(base.confidences))
        out.append(Output(base.artist, base.style, base.genre, confs))  # type: ignore[arg-type]
    return out


def unseen_cases(train: Iterable[dict[str, Any]], n: int = 25, seed: int = 0,
                 also_unseen_by: Iterable[dict[str, Any]] = ()) -> list[Output]:
    """``n`` artist/movement pairings absent from ``train`` (and from ``also_unseen_by``, e.g. another model's
    training pairs, so two models are compared on pairings neither saw), with one of the artist's typical genres,
    a confident artist head and a less confident style head."""
    seen = {(r["artist"], r["style"]) for r in train} | {(r["artist"], r["style"]) for r in also_unseen_by}
    pairs = [(a, s) for a in ARTISTS for s in STYLES if (a, s) not in seen and s not in ARTIST_TABLE[a].styles]
    rng = random.Random(seed + 2)
    out = []
    for a, s in _sample(pairs, n, seed):
        genre = rng.choice(ARTIST_TABLE[a].genres)
        out.append(Output(a, s, genre, (round(rng.uniform(80, 97), 1), round(rng.uniform(60, 85), 1),
                                        round(rng.uniform(75, 97), 1))))
    return out


def build_sets(records: dict[str, list[dict[str, Any]]], n: int = 50, n_unseen: int = 25, seed: int = 0,
               held_out_split: str = "test") -> dict[str, list[Output]]:
    """The three sets of ``ncanvas eval-llm``: held-out triples, low confidences, pairings absent from train."""
    held = records[held_out_split]
    return {"heldout": heldout_cases(held, n, seed), "low": low_cases(held, n, seed),
            "unseen": unseen_cases(records.get("train", []), n_unseen, seed)}


def validation_cases(records: dict[str, list[dict[str, Any]]], n: int = 64, seed: int = 0) -> list[Output]:
    """``n`` prompts for the faithfulness metric at each validation: half held-out val triples, a quarter at low
    confidence, a quarter pairings absent from train. Fixed for a run (same seed, same prompts), so the curve
    moves only with the model."""
    val = records["val"]
    half, quarter = n // 2, n // 4
    return (heldout_cases(val, half, seed) + low_cases(val, quarter, seed + 7)
            + unseen_cases(records.get("train", []), n - half - quarter, seed))
