"""The synthetic prompt -> explanation dataset (``ncanvas data explanations``). No torch.

Deterministic for a seed. Facts come from the label tables: most cases are an artist with one of their own
movements and genres at high confidence; a minority are plausible mismatches (a related movement, an unusual
genre) at lower confidence, and a few are unrelated movements (a CNN can be wrong in any way), which the
explanation names. Splits are by a hash of the (artist, style, genre) triple, so a val/test combination never
appears in train and scores measure generalisation, not recall; and a fifth of the unrelated (artist, style)
pairings are held out whole (``heldout_pair``), so "a pairing never seen in training" always exists to test on.
"""

from __future__ import annotations

import functools
import json
import random
import time
import zlib
from bisect import bisect_right
from collections.abc import Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

from core.errors import NcanvasError
from core.explain import PROMPT_FORMAT, format_prompt
from core.explain.labels import ARTIST_TABLE, ARTISTS, GENRES, STYLES, confusable_styles
from core.explain.templates import Case, explain, pick

SPLITS = ("train", "val", "test")
VAL_PCT, TEST_PCT = 5, 5  # of the triple-hash buckets
HELDOUT_PAIR_PCT = 20     # of the unrelated (artist, style) pairings: never in train, split between val and test
CONF_MIN, CONF_MAX = 60.0, 98.0
VERSION = 4  # 2: unrelated mismatches, held-out pairings, confidences decorrelated from mismatches, prompt
# format 2, templates checked by core.explain.check; 3: prompt format 3 (the Checks: line), same pairs otherwise;
# 4: a low confidence's meaning is worded per head (no phrase shared by two low heads)


@functools.cache
def _unrelated(artist: str) -> tuple[str, ...]:
    """Movements that are neither the artist's nor related to theirs: a CNN error the tables do not explain."""
    near = set(ARTIST_TABLE[artist].styles) | set(_CONFUSABLE[artist])
    return tuple(s for s in STYLES if s not in near)


@functools.cache
def heldout_pair(artist: str, style: str) -> bool:
    """Whether (artist, style) is an unrelated pairing kept out of train entirely (stable hash, as ``split_of``)."""
    return style in _unrelated(artist) and zlib.crc32(f"pair|{artist}|{style}".encode()) % 100 < HELDOUT_PAIR_PCT


@functools.cache  # 25 x 27 x 19 triples at most; asked once per generated pair
def split_of(artist: str, style: str, genre: str) -> str:
    """The split of a triple: a stable hash (independent of the seed and the Python hash salt)."""
    bucket = zlib.crc32(f"{artist}|{style}|{genre}".encode()) % 100
    if heldout_pair(artist, style):
        return "test" if bucket % 2 == 0 else "val"
    return "test" if bucket < TEST_PCT else "val" if bucket < TEST_PCT + VAL_PCT else "train"


def _conf_cdf(a: float, b: float, sub: int = 16) -> tuple[float, ...]:
    """Cumulative probabilities of the printable confidences (0.1 % steps) under Beta(a, b) stretched over
    [CONF_MIN, CONF_MAX]: the distribution ``round(CONF_MIN + span * rng.betavariate(a, b), 1)`` would give,
    integrated once (midpoint rule) so that a draw is one ``random()`` and a bisect instead of two gamma
    variates (a third of the generator's time)."""
    steps = len(CONF_VALUES) - 1
    mass = []
    for k in range(steps + 1):  # value k covers x in [(k - 0.5) / steps, (k + 0.5) / steps), clipped to [0, 1]
        lo, hi = max(0.0, (k - 0.5) / steps), min(1.0, (k + 0.5) / steps)
        xs = (lo + (hi - lo) * (i + 0.5) / sub for i in range(sub))
        mass.append((hi - lo) * sum(x ** (a - 1) * (1 - x) ** (b - 1) for x in xs))
    total, acc, cdf = sum(mass), 0.0, []
    for m in mass:
        acc += m
        cdf.append(acc / total)
    return tuple(cdf)


CONF_VALUES = tuple(round(CONF_MIN + k / 10, 1) for k in range(round((CONF_MAX - CONF_MIN) * 10) + 1))
# Beta(6, 1.6) sits near the top of the range (mean 90 %), Beta(2, 3) in the lower middle (mean 75.2 %): how
# softmax maxima of a decent classifier look on its typical vs its confusing images.
_STRONG_CDF, _WEAK_CDF = _conf_cdf(6.0, 1.6), _conf_cdf(2.0, 3.0)
_CONFUSABLE = {a: confusable_styles(a) for a in ARTISTS}
_UNUSUAL_GENRES = {a: tuple(g for g in GENRES if g not in ARTIST_TABLE[a].genres) for a in ARTISTS}
# The first-listed genres are the most typical: weights n, n-1, ..., 1, as cumulative sums for bisect.
_GENRE_CUM = {a: tuple(accumulate(range(len(ARTIST_TABLE[a].genres), 0, -1))) for a in ARTISTS}


def _conf(rng: random.Random, strong: bool) -> float:
    cdf = _STRONG_CDF if strong else _WEAK_CDF
    return CONF_VALUES[min(bisect_right(cdf, rng.random()), len(CONF_VALUES) - 1)]


def _style_for(rng: random.Random, artist: str, mismatch: bool, unrelated: bool = False) -> str:
    if unrelated:
        return pick(rng, _unrelated(artist))
    if mismatch:
        return pick(rng, _CONFUSABLE[artist])
    own = ARTIST_TABLE[artist].styles
    return own[0] if rng.random() < 0.7 else pick(rng, own)


def _genre_for(rng: random.Random, artist: str, mismatch: bool) -> str:
    if mismatch:
        return pick(rng, _UNUSUAL_GENRES[artist])
    cum = _GENRE_CUM[artist]
    return ARTIST_TABLE[artist].genres[bisect_right(cum, rng.random() * cum[-1])]


def sample_case(rng: random.Random) -> Case:
    """One classification: mostly consistent facts; independently a mismatched movement (~14% related, ~8%
    unrelated) and a mismatched genre (~18%). A head's confidence is usually strong when it fits and weak when it
    does not, but not always (~20% of fitting heads are weak, ~30% of mismatched ones strong, and ~10% of images
    are hard: every head weak), so the explainer must read mismatches from the tables and "low" from the number,
    not one from the other."""
    artist = pick(rng, ARTISTS)
    r_style, r_genre, hard = rng.random(), rng.random(), rng.random() < 0.10
    unrelated = r_style < 0.08
    style_mm, genre_mm = r_style < 0.22, r_genre < 0.18

    def strong(mismatch: bool) -> bool:
        return not hard and rng.random() < (0.3 if mismatch else 0.8)

    a_conf = _conf(rng, strong(False))
    style, genre = _style_for(rng, artist, style_mm, unrelated), _genre_for(rng, artist, genre_mm)
    return Case(artist, a_conf, style, _conf(rng, strong(style_mm)), genre, _conf(rng, strong(genre_mm)))


def generate(n: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` records ``{prompt, explanation, split, artist, a_conf, style, s_conf, genre, g_conf}``."""
    rng = random.Random(seed)
    for _ in range(n):
        c = sample_case(rng)
        yield {"prompt": format_prompt(c.artist, c.a_conf, c.style, c.s_conf, c.genre, c.g_conf),
               "explanation": explain(rng, c), "split": split_of(c.artist, c.style, c.genre),
               "artist": c.artist, "a_conf": c.a_conf, "style": c.style, "s_conf": c.s_conf,
               "genre": c.genre, "g_conf": c.g_conf}


def generate_splits(n: int, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """``generate`` grouped by split (in memory; 100K pairs take about 100 MB)."""
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for rec in generate(n, seed):
        out[rec["split"]].append(rec)
    return out


def write_dataset(out: str | Path, n: int, seed: int = 0) -> dict[str, Any]:
    """Write ``train.jsonl``, ``val.jsonl``, ``test.jsonl`` and ``meta.json`` under ``out``; return the meta."""
    if n < 1:
        raise NcanvasError(f"--n must be >= 1; got {n}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NcanvasError(f"--out {out} exists and is not a folder")
    t0 = time.perf_counter()
    counts = dict.fromkeys(SPLITS, 0)
    try:
        out.mkdir(parents=True, exist_ok=True)
        files = {s: open(out / f"{s}.jsonl", "w", encoding="utf-8") for s in SPLITS}  # noqa: SIM115
        try:
            for rec in generate(n, seed):
                files[rec["split"]].write(json.dumps(rec, ensure_ascii=False) + "\n")
                counts[rec["split"]] += 1
        finally:
            for f in files.values():
                f.close()
    except OSError as e:
        raise NcanvasError(f"cannot write the dataset to {out}: {e.strerror or e}") from None
    meta = {"generator": "ncanvas-explanations", "version": VERSION, "prompt_format": PROMPT_FORMAT, "n": n,
            "seed": seed, "counts": counts,
            "split_rule": f"crc32(artist|style|genre) % 100: <{TEST_PCT} test, <{TEST_PCT + VAL_PCT} val; unrelated "
                          f"pairings with crc32(pair|artist|style) % 100 < {HELDOUT_PAIR_PCT} never in train",
            "seconds": round(time.perf_counter() - t0, 2)}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def read_split(data_dir: str | Path, split: str) -> list[dict[str, Any]]:
    """Records of one split written by :func:`write_dataset`."""
    path = Path(data_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise NcanvasError(f"{path} not found: make it with `ncanvas data explanations --out {data_dir}`")
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise NcanvasError(f"{path}:{n} is not JSON: {e}") from None
            if not (isinstance(rec, dict) and isinstance(rec.get("prompt"), str)
                    and isinstance(rec.get("explanation"), str)):
                raise NcanvasError(f"{path}:{n}: expected an object with \"prompt\" and \"explanation\" strings")
            out.append(rec)
    return out
