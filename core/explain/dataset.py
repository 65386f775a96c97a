"""The synthetic prompt -> explanation dataset (``ncanvas data explanations``). No torch.

Deterministic for a seed. Facts come from the label tables: most cases are an artist with one of their own
movements and genres at high confidence; a minority are plausible mismatches (a related movement, an unusual
genre) at lower confidence, which the explanation names. Splits are by a hash of the (artist, style, genre)
triple, so a val/test combination never appears in train and scores measure generalisation, not recall.
"""

from __future__ import annotations

import json
import random
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.errors import NcanvasError
from core.explain import format_prompt
from core.explain.labels import ARTIST_TABLE, ARTISTS, GENRES, STYLE_TABLE
from core.explain.templates import Case, explain

SPLITS = ("train", "val", "test")
VAL_PCT, TEST_PCT = 5, 5  # of the triple-hash buckets
CONF_MIN, CONF_MAX = 60.0, 98.0


def split_of(artist: str, style: str, genre: str) -> str:
    """The split of a triple: a stable hash (independent of the seed and the Python hash salt)."""
    bucket = zlib.crc32(f"{artist}|{style}|{genre}".encode()) % 100
    return "test" if bucket < TEST_PCT else "val" if bucket < TEST_PCT + VAL_PCT else "train"


def _conf(rng: random.Random, strong: bool) -> float:
    # Beta(6,1.6) sits near the top of the range, Beta(2,3) in the lower middle: how softmax maxima of a
    # decent classifier look on its typical vs confusing images.
    x = rng.betavariate(6.0, 1.6) if strong else rng.betavariate(2.0, 3.0)
    return round(CONF_MIN + (CONF_MAX - CONF_MIN) * x, 1)


def _style_for(rng: random.Random, artist: str, mismatch: bool) -> str:
    own = ARTIST_TABLE[artist].styles
    if not mismatch:
        return own[0] if rng.random() < 0.7 else rng.choice(own)
    related = [r for s in own for r in STYLE_TABLE[s].related if r not in own]
    return rng.choice(related)


def _genre_for(rng: random.Random, artist: str, mismatch: bool) -> str:
    own = ARTIST_TABLE[artist].genres
    if not mismatch:
        weights = [len(own) - i for i in range(len(own))]  # the first-listed genres are the most typical
        return rng.choices(own, weights)[0]
    return rng.choice([g for g in GENRES if g not in own])


def sample_case(rng: random.Random) -> Case:
    """One classification: consistent facts, occasional plausible mismatches at lower confidence."""
    artist = rng.choice(ARTISTS)
    r = rng.random()
    style_mm, genre_mm = r < 0.18, 0.12 <= r < 0.30  # ~12% style-only, ~6% both, ~12% genre-only
    a_conf = _conf(rng, strong=not (style_mm and genre_mm) and rng.random() < 0.85)
    style, genre = _style_for(rng, artist, style_mm), _genre_for(rng, artist, genre_mm)
    return Case(artist, a_conf, style, _conf(rng, strong=not style_mm), genre, _conf(rng, strong=not genre_mm))


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
    meta = {"generator": "ncanvas-explanations", "version": 1, "n": n, "seed": seed, "counts": counts,
            "split_rule": f"crc32(artist|style|genre) % 100: <{TEST_PCT} test, <{TEST_PCT + VAL_PCT} val",
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
