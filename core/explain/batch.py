"""Input of ``ncanvas explain --batch``: one CNN output per JSON line. No torch.

A line is ``{"artist": "Claude Monet", "style": "Impressionism", "genre": "Landscape", "confidences": [96.2, 94.8,
91.3]}`` (percentages, artist/style/genre order); an optional ``"id"`` (string or number) is echoed in the output
line. Labels are matched like ``--artist`` (any case; an unknown one gets the closest names). Blank lines are
skipped. A bad line is not fatal: the caller writes an error object for it and goes on, so output line *k* is
always input record *k*.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from core.errors import NcanvasError
from core.explain import HEADS, canonical_label
from core.explain.check import Output


@dataclass(frozen=True)
class BatchItem:
    line: int
    case: Output | None     # None: the line was not valid
    error: str | None = None
    id: Any = None


def parse_line(text: str) -> tuple[Output, Any]:
    """The CNN output (labels as the tables spell them) and optional id of one line; one-line errors."""
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise NcanvasError(f"not JSON ({e})") from None
    if not isinstance(obj, dict):
        raise NcanvasError("expected a JSON object with artist, style, genre and confidences")
    missing = [k for k in (*HEADS, "confidences") if k not in obj]
    if missing:
        raise NcanvasError(f"missing {', '.join(missing)}")
    for head in HEADS:
        if not isinstance(obj[head], str) or not obj[head].strip():
            raise NcanvasError(f"{head} must be a non-empty string")
    confs = obj["confidences"]
    if (not isinstance(confs, list) or len(confs) != 3
            or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in confs)):
        raise NcanvasError("confidences must be a list of three numbers [artist, style, genre]")
    if not all(0.0 <= c <= 100.0 for c in confs):
        raise NcanvasError(f"confidences are percentages in [0, 100]; got {confs}")
    ident = obj.get("id")
    if ident is not None and not isinstance(ident, str | int | float):
        raise NcanvasError("id must be a string or a number")
    labels = [canonical_label(obj[h], h) for h in HEADS]
    return Output(labels[0], labels[1], labels[2], (float(confs[0]), float(confs[1]), float(confs[2]))), ident


def read_batch(lines: Iterable[str]) -> Iterator[BatchItem]:
    """One :class:`BatchItem` per non-blank line, in order (line numbers count from 1, blank lines included)."""
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            case, ident = parse_line(raw)
        except NcanvasError as e:
            yield BatchItem(n, None, f"line {n}: {e}")
            continue
        yield BatchItem(n, case, None, ident)
