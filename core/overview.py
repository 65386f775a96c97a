"""A bounded-cost overview of the start of a huge ``metrics.jsonl``. No torch.

The dashboard shows the whole curve of a run whose metrics file is 1 GB without parsing its ten million lines:
the part before the tail is scanned in large chunks at C speed (``bytes.find``/``count``), keeping

- every row that is not a plain train row (val/test rows and events are rare, and each one matters), and
- one train point per ``every`` bytes: the mean of the ``cluster`` train rows found there (so the raw noise of
  one step does not stand for a thousand), tagged ``"_n"`` with the number of lines it stands for, so the series
  weights it in its EMA as that many raw points (:meth:`core.metrics.Series.append`).

Only the kept lines are decoded, so the cost is one read of the file plus ``points * cluster`` ``json.loads``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# a line holding any of these is kept whole: events and the val/test splits (whatever the JSON spacing); each
# pattern costs one scan of the chunk, so there are as few as that takes
KEEP_PATTERNS = (b'"event"', b'"val"', b'"test"')
COUNT_KEY = "_n"  # how many raw lines a sampled train row stands for
_NOT_AVERAGED = frozenset({"v", "t", "step", "epoch"})


@dataclass
class OverviewSampler:
    """Sampling state carried across chunks: the next absolute sample offset and the lines since the last one."""

    every: int  # bytes between two sampled train points
    cluster: int = 8  # consecutive train rows averaged into each point
    next_at: int = 0
    lines_since: int = 1  # the first sample stands for itself and the lines before it
    bad_lines: int = 0

    def sample(self, body: bytes, base: int) -> list[dict[str, Any]]:
        """Rows kept from ``body`` (whole lines only), which starts at absolute offset ``base``."""
        keep = _special_line_starts(body)
        picks: dict[int, dict[str, Any]] = {}  # line start -> the row kept there
        for start in keep:
            row = self._decode(body, start)
            if row is not None:
                picks[start] = row
        last = 0  # where the current run of unsampled lines began, relative to body
        while self.next_at < base + len(body):
            rel = max(0, self.next_at - base)
            start = body.rfind(b"\n", 0, rel) + 1 if rel else 0  # the line holding the sample offset
            self.next_at = base + rel + self.every
            if start in picks or start in keep:  # an event or val row, or a line longer than ``every``
                continue
            point, whole = self._point(body, start, keep)
            if not whole:  # the cluster runs past this chunk: sample it at the start of the next one
                self.next_at = base + start
                break
            self.lines_since += body.count(b"\n", last, start)
            if point is not None:
                if self.lines_since > 1:
                    point[COUNT_KEY] = self.lines_since
                picks[start] = point
            self.lines_since, last = 0, start
        self.lines_since += body.count(b"\n", last, len(body))
        return [picks[k] for k in sorted(picks)]

    def _point(self, body: bytes, start: int, keep: set[int]) -> tuple[dict[str, Any] | None, bool]:
        """The mean of ``cluster`` train rows from ``start`` on (other rows are kept on their own), and whether
        ``body`` held them all: a cut cluster would let one noisy row stand for a hundred."""
        rows: list[dict[str, Any]] = []
        pos = start
        while len(rows) < self.cluster:
            if pos >= len(body):
                return None, False
            if pos not in keep:
                row = self._decode(body, pos)
                if row is not None and row.get("split", "train") == "train" and "event" not in row:
                    rows.append(row)
            pos = body.find(b"\n", pos) + 1 or len(body)
        return _mean_row(rows), True

    def _decode(self, body: bytes, start: int) -> dict[str, Any] | None:
        end = body.find(b"\n", start)
        try:
            row = json.loads(body[start:end if end >= 0 else len(body)])
        except ValueError:
            row = None
        if not isinstance(row, dict):
            self.bad_lines += 1
            return None
        return row


def _mean_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The middle row, with each numeric metric replaced by its mean over ``rows`` (nulls ignored)."""
    out = dict(rows[len(rows) // 2])
    for key, value in out.items():
        if key in _NOT_AVERAGED or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        vals = [r[key] for r in rows if isinstance(r.get(key), (int, float)) and not isinstance(r[key], bool)]
        out[key] = sum(vals) / len(vals)
    return out


def _special_line_starts(body: bytes) -> set[int]:
    """Start offsets of the lines holding any of :data:`KEEP_PATTERNS`."""
    out = set()
    for pat in KEEP_PATTERNS:
        i = body.find(pat)
        while i >= 0:
            out.add(body.rfind(b"\n", 0, i) + 1)
            nl = body.find(b"\n", i)
            if nl < 0:
                break
            i = body.find(pat, nl + 1)
    return out
