"""Explanations of a CNN's art classification: label tables, the prompt format, the synthetic dataset. No torch.

``format_prompt`` is the one definition of the prompt the explainer LLMs read; ``prompt_from_logits`` turns a
multi-head CNN output ``{'artist', 'style', 'genre'}`` into it (softmax, then top-1 per head). The format has a
version (``PROMPT_FORMAT``); ``parse_prompt`` reads every version and ``reformat_prompt`` converts between them, so a
checkpoint trained on an older one is still given the prompt it knows.

Version 3 adds a ``Checks:`` line that the product computes from the label tables and the numbers: which heads are
in the low band and which predicted movement or genre is not the artist's (with the artist's own). An explanation
must say those things (the checker scores them); written into the prompt, saying them is copying, not recalling a
25 x 27 table from a few million parameters. The line is always rebuilt from the three results, never trusted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from core.errors import NcanvasError
from core.explain.labels import ARTIST_TABLE, ARTISTS, GENRES, STYLES
from core.explain.templates import LOW_BELOW

HEADS = ("artist", "style", "genre")
PROMPT_FORMAT = 3  # what format_prompt writes; a checkpoint records the version it was trained on
CHECKS_LINE = re.compile(r"^Checks: .*$", re.M)
PROMPT_TEMPLATE = (
    "CNN Classification Results:\n"
    "Artist: {artist}, confidence {a_conf:.1f}%\n"
    "Style: {style}, confidence {s_conf:.1f}%\n"
    "Genre: {genre}, confidence {g_conf:.1f}%\n"
    "\n"
    "Explain these results:"
)
# One line of either version: 1 wrote "Claude Monet (96.2% confidence)"; 2 writes "Claude Monet, confidence 96.2%".
PROMPT_LINE = re.compile(r"^(Artist|Style|Genre): (?:(.+) \((\d+(?:\.\d+)?)% confidence\)|(.+), confidence "
                         r"(\d+(?:\.\d+)?)%)$", re.M)


def checks_line(artist: str, a_conf: float, style: str, s_conf: float, genre: str, g_conf: float) -> str:
    """What an explanation of these results must say, from the tables and the numbers (prompt format 3):
    ``Checks: genre low; style not the artist's (Impressionism)``, or ``Checks: none``. Heads in the low band in
    head order, then a movement, then a genre that is not the artist's, each with the artist's own (their main
    movement; their two most typical genres, as the explanations name them). An artist outside the tables gets
    no mismatch item: nothing is known to compare with."""
    parts = [f"{h} low" for h, c in (("artist", a_conf), ("style", s_conf), ("genre", g_conf)) if c < LOW_BELOW]
    known = ARTIST_TABLE.get(artist)
    if known is not None:
        if style not in known.styles:
            parts.append(f"style not the artist's ({known.styles[0]})")
        if genre not in known.genres:
            parts.append(f"genre not the artist's ({' and '.join(g.lower() for g in known.genres[:2])})")
    return "Checks: " + ("; ".join(parts) or "none")


def format_prompt(artist: str, a_conf: float, style: str, s_conf: float, genre: str, g_conf: float,
                  version: int = PROMPT_FORMAT) -> str:
    """The exact prompt format of the dataset (``PROMPT_TEMPLATE``); confidences are percentages (``96.2``).

    Version 3 (``PROMPT_TEMPLATE`` plus the :func:`checks_line` before the instruction) tells the model what it
    must flag. Version 2 writes each number after a space (", confidence 96.2%"), as the explanations do ("at
    96.2%"), so a byte-level BPE sees the same tokens in both places and copying a number is copying tokens;
    version 1 ("(96.2% confidence)") is what checkpoints trained before it read, and ``version=1`` still writes
    it. Spelled out as f-strings: ``str.format`` with keywords is 2.5x slower, on the dataset's hot path."""
    if version == 1:
        return (f"CNN Classification Results:\nArtist: {artist} ({a_conf:.1f}% confidence)\n"
                f"Style: {style} ({s_conf:.1f}% confidence)\nGenre: {genre} ({g_conf:.1f}% confidence)\n"
                "\nExplain these results:")
    checks = f"{checks_line(artist, a_conf, style, s_conf, genre, g_conf)}\n" if version >= 3 else ""
    return (f"CNN Classification Results:\nArtist: {artist}, confidence {a_conf:.1f}%\n"
            f"Style: {style}, confidence {s_conf:.1f}%\nGenre: {genre}, confidence {g_conf:.1f}%\n"
            f"{checks}\nExplain these results:")


def parse_prompt(text: str) -> tuple[dict[str, Any], int] | None:
    """``({"artist", "style", "genre", "confidences": [a, s, g]}, version)`` of a prompt in any format, or None
    when ``text`` is not one (a free-form prompt). A ``Checks:`` line makes it version 3; its content is not
    read (it is derived from the three results)."""
    found: dict[str, tuple[str, float]] = {}
    versions = set()
    for m in PROMPT_LINE.finditer(text):
        name, conf = (m.group(2), m.group(3)) if m.group(2) is not None else (m.group(4), m.group(5))
        found[m.group(1).lower()] = (name.strip(), float(conf))
        versions.add(1 if m.group(2) is not None else 2)
    if set(found) != set(HEADS) or len(versions) != 1:
        return None
    case: dict[str, Any] = {h: found[h][0] for h in HEADS}
    case["confidences"] = [found[h][1] for h in HEADS]
    version = versions.pop()
    return case, 3 if version == 2 and CHECKS_LINE.search(text) else version


def reformat_prompt(text: str, version: int) -> str:
    """``text`` in prompt format ``version`` (what a checkpoint was trained on); a free-form prompt unchanged.
    A version-3 prompt is always rebuilt, so its ``Checks:`` line matches the results even after someone edited
    a label or a number and left the line as it was."""
    parsed = parse_prompt(text)
    if parsed is None or (parsed[1] == version and version < 3):
        return text
    case, _ = parsed
    a, s, g = case["confidences"]
    return format_prompt(case["artist"], a, case["style"], s, case["genre"], g, version=version)


def canonical_label(value: str, head: str) -> str:
    """``value`` as spelled in the ``head`` table (artist, style or genre), matched without regard to case;
    an unknown name raises one line with the closest names ("did you mean ...")."""
    import difflib

    table = {"artist": ARTISTS, "style": STYLES, "genre": GENRES}[head]
    by_lower = {x.lower(): x for x in table}
    if value.strip().lower() in by_lower:
        return by_lower[value.strip().lower()]
    close = difflib.get_close_matches(value, table, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; e.g. {', '.join(table[:3])}"
    raise NcanvasError(f"unknown {head} {value!r}{hint}")


def _to_numpy(x: Any) -> Any:
    import numpy as np

    if hasattr(x, "detach"):  # a torch tensor: no torch import needed to convert it
        x = x.detach().float().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise NcanvasError(f"expected logits of shape (C,) or (1, C); got {tuple(arr.shape)}")
    return arr


def top1_from_logits(logits: Mapping[str, Any],
                     labels: Mapping[str, Sequence[str]] | None = None) -> dict[str, tuple[str, float]]:
    """``{head: (label, confidence %)}`` from per-head logits (softmax, then argmax)."""
    import numpy as np

    names = {"artist": ARTISTS, "style": STYLES, "genre": GENRES, **(labels or {})}
    out: dict[str, tuple[str, float]] = {}
    for head in HEADS:
        if head not in logits:
            raise NcanvasError(f"CNN output has no {head!r} head (heads: {', '.join(map(str, logits))})")
        z = _to_numpy(logits[head])
        if len(z) != len(names[head]):
            raise NcanvasError(f"{head} head has {len(z)} classes; the label table has {len(names[head])}")
        p = np.exp(z - z.max())
        p /= p.sum()
        i = int(p.argmax())
        out[head] = (names[head][i], float(p[i]) * 100.0)
    return out


def prompt_from_logits(logits: Mapping[str, Any], labels: Mapping[str, Sequence[str]] | None = None) -> str:
    """The explainer prompt for a CNN output ``{'artist': logits, 'style': logits, 'genre': logits}``.

    Args:
        logits: per-head logits, torch tensors or array-likes of shape (C,) or (1, C).
        labels: per-head class names when they differ from the shared tables (e.g. from a checkpoint).
    """
    top = top1_from_logits(logits, labels)
    return format_prompt(*top["artist"], *top["style"], *top["genre"])


__all__ = ["ARTISTS", "GENRES", "HEADS", "PROMPT_FORMAT", "STYLES", "checks_line", "format_prompt", "parse_prompt",
           "prompt_from_logits", "reformat_prompt", "top1_from_logits"]
