"""The metrics log: ``metrics.jsonl``, one JSON object per line, flushed per line. No torch.

Writer (job side) and tailer (dashboard side). The tailer reads only new bytes from a byte offset, keeps a
partial last line for the next poll, detects truncation and rotation, and skips malformed lines (counted).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from core.overview import COUNT_KEY, OverviewSampler
from core.smoothing import debias, ema_debiased, ema_step

FORMAT_VERSION = 1
EVENTS = ("started", "resumed", "epoch_end", "checkpoint", "stopped", "finished", "failed")


def _clean(value: Any) -> Any:
    # JSON has no NaN/Inf; a diverged loss must still be written, as null, not crash the job.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsWriter:
    """Appends one JSON object per line to ``metrics.jsonl`` and flushes it, so readers see whole lines."""

    def __init__(self, path: str | os.PathLike[str], get_time: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - owned for the job's life
        self._get_time = get_time

    def log(self, **row: Any) -> dict[str, Any]:
        """Write one row: ``{"v":1, "t":now, **row}``. Returns the row as written."""
        out = {"v": FORMAT_VERSION, "t": round(self._get_time(), 3)}
        out.update({k: _clean(v) for k, v in row.items()})
        self._f.write(json.dumps(out, separators=(",", ":")) + "\n")
        self._f.flush()
        return out

    def event(self, name: str, **fields: Any) -> dict[str, Any]:
        return self.log(event=name, **fields)

    def offset(self) -> int:
        """Bytes written so far (the position a checkpoint records)."""
        self._f.flush()
        return self._f.tell()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class TailResult:
    rows: list[dict[str, Any]]
    reset: bool = False  # the file was truncated or replaced: consumers should drop what they built


@dataclass
class MetricsTailer:
    """Incremental reader of a JSONL file by byte offset.

    ``start_at_tail_bytes`` starts near the end of a large file (the first, partial line there is skipped),
    so opening a 1 GB log reads only its last few MB. With ``overview_points`` as well, the part before that
    tail is not skipped but sampled (:mod:`core.overview`): every val/test row and event, and about that many
    train rows tagged with the number of lines each stands for, so the whole curve shows at bounded cost.
    """

    path: Path
    start_at_tail_bytes: int | None = None
    max_read: int = 8 << 20  # bytes per poll, so one poll never stalls on a huge backlog
    overview_points: int = 0
    overview_read: int = 16 << 20  # bytes per poll while sampling (scanned at C speed, few lines decoded)
    offset: int = 0
    bad_lines: int = 0
    _partial: bytes = b""
    _inode: int | None = None
    _skip_first: bool = field(default=False, repr=False)
    _overview_end: int = field(default=0, repr=False)
    _sampler: OverviewSampler | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def _open_position(self, size: int) -> None:
        self.offset, self._skip_first, self._overview_end, self._sampler = 0, False, 0, None
        if self.start_at_tail_bytes is not None and size > self.start_at_tail_bytes:
            if self.overview_points > 0:
                self._overview_end = size - self.start_at_tail_bytes
                self._sampler = OverviewSampler(every=max(1, self._overview_end // self.overview_points))
            else:
                self.offset = size - self.start_at_tail_bytes
                self._skip_first = True
        self._partial = b""

    @property
    def sampling(self) -> bool:
        """Still reading the sampled start of a large file (the curve is not complete yet)."""
        return self.offset < self._overview_end

    def poll(self) -> TailResult:
        """Read what was appended since the last poll."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._overview_end = 0  # not sampling a file that is gone (a new one at this path starts over)
            return TailResult([])
        reset = False
        if self._inode is None:
            self._inode = st.st_ino
            self._open_position(st.st_size)
        elif st.st_ino != self._inode or st.st_size < self.offset:
            self._inode = st.st_ino  # rotated (new file) or truncated: start over from its beginning
            self.offset, self._partial, self._skip_first = 0, b"", False
            self._overview_end, self._sampler = 0, None
            reset = True
        if st.st_size <= self.offset:
            return TailResult([], reset)
        sampling = self.sampling
        limit = min(self.overview_read, self._overview_end - self.offset) if sampling else self.max_read
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(min(limit, st.st_size - self.offset))
        self.offset += len(data)
        return TailResult(self._sample(data) if sampling else self._parse(data), reset)

    def _sample(self, data: bytes) -> list[dict[str, Any]]:
        assert self._sampler is not None
        data = self._partial + data
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]  # finished by the next read (sampled or parsed in full)
        rows = self._sampler.sample(data[:end], self.offset - len(data))
        self.bad_lines = self._sampler.bad_lines
        return rows

    def _parse(self, data: bytes) -> list[dict[str, Any]]:
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when data ended with a newline
        if self._skip_first and lines:
            lines.pop(0)
            self._skip_first = False
        rows = []
        for line in lines:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                self.bad_lines += 1
                continue
            if isinstance(obj, dict):
                rows.append(obj)
            else:
                self.bad_lines += 1
        return rows

    def read_all(self) -> list[dict[str, Any]]:
        """Poll until caught up with the file's current end."""
        rows: list[dict[str, Any]] = []
        while True:
            before = self.offset
            res = self.poll()
            if res.reset:
                rows.clear()
            rows.extend(res.rows)
            if self.offset == before:
                return rows


def iter_rows(path: str | os.PathLike[str], chunk: int = 1 << 20) -> Iterator[dict[str, Any]]:
    """Stream every well-formed row of a metrics file in bounded memory."""
    tailer = MetricsTailer(Path(path), max_read=chunk)
    while True:
        before = tailer.offset
        yield from tailer.poll().rows
        if tailer.offset == before:
            return


def tail_rows(path: str | os.PathLike[str], max_bytes: int = 4 << 20) -> list[dict[str, Any]]:
    """The rows in the last ``max_bytes`` of a metrics file (whole lines only)."""
    return MetricsTailer(Path(path), start_at_tail_bytes=max_bytes).read_all()


def series_key(row: dict[str, Any], metric: str) -> str:
    split = row.get("split", "train")
    if not isinstance(split, str) or not split or "/" in split or len(split) > 32:
        split = "other"  # a foreign or hand-edited split value still names one bounded series
    return f"{split}/{metric}"


@dataclass
class Series:
    """One (step, value) series with bounded memory: past ``cap`` points it halves its resolution.

    With ``smooth_weights``, a debiased EMA per weight (TensorBoard's) runs over every raw point as it arrives,
    and each stored point keeps that EMA's state too: thinning never degrades the smoothed curve, which is
    therefore the full-resolution one, downsampled (``smoothed(w)``).
    """

    cap: int = 20_000
    steps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    stride: int = 1  # how many raw points each stored point stands for (after halvings)
    smooth_weights: tuple[float, ...] = ()
    _pending: int = 0
    _ema: dict[float, float] = field(default_factory=dict)  # weight -> running accumulator
    _n: int = 0  # finite raw points seen (the debiasing count; the same for every weight)
    _acc: dict[float, list[float]] = field(default_factory=dict)  # weight -> accumulator at each stored point
    _counts: list[int] = field(default_factory=list)  # finite raw points seen up to each stored point
    _seen: int = 0  # raw points seen (an overview point counts as the rows it stands for)
    _raw: list[int] = field(default_factory=list)  # ``_seen`` at each stored point: its place in the raw series
    _tip: bool = False  # the last stored point is the newest raw one, to be replaced by the next

    def append(self, step: float, value: float, count: int = 1) -> None:
        """Add a point; ``count`` > 1 when it stands for that many raw points (a sampled overview row), which
        the EMA takes as the value repeated ``count`` times."""
        if self.smooth_weights and math.isfinite(value):  # NaN/inf is shown as it is, not averaged in
            self._n += count
            for w in self.smooth_weights:
                self._ema[w] = ema_step(self._ema.get(w, 0.0), value, w, count)
        self._seen += count
        tip = False  # one point per ``stride`` raw points once thinned; the newest in between is the curve's tip
        if self.stride > 1:
            self._pending += count
            tip = self._pending < self.stride
            if not tip:
                self._pending = 0
        self._store(step, value, replace=self._tip)
        self._tip = tip
        while len(self.steps) > self.cap:
            self._thin()

    def _store(self, step: float, value: float, replace: bool) -> None:
        """Append a point, or overwrite the last one when it was only the tip (the newest raw point so far)."""
        acc = [self._acc.setdefault(w, []) for w in self.smooth_weights]
        if replace:
            columns: list[list[Any]] = [self.steps, self.values, self._raw, self._counts, *acc]
            for xs in columns:
                if xs:
                    xs.pop()
        self.steps.append(step)
        self.values.append(value)
        self._raw.append(self._seen)
        if self.smooth_weights:
            for w, xs in zip(self.smooth_weights, acc):
                xs.append(self._ema.get(w, 0.0))
            self._counts.append(self._n)

    def _thin(self) -> None:
        """Double the stride, keeping the first stored point of each ``stride`` raw points (and the newest): the
        points stay evenly spread over the raw series, so an overview point standing for a thousand rows is not
        thinned away as fast as a thousand single rows, and the curve keeps its first point."""
        self.stride *= 2
        keep, bucket, newest = [], -1, len(self._raw) - 1
        for i, at in enumerate(self._raw):
            if (at - 1) // self.stride != bucket or i == newest:
                keep.append(i)
                bucket = (at - 1) // self.stride
        self.steps = [self.steps[i] for i in keep]
        self.values = [self.values[i] for i in keep]
        self._raw = [self._raw[i] for i in keep]
        self._acc = {w: [v[i] for i in keep] for w, v in self._acc.items()}
        self._counts = [self._counts[i] for i in keep] if self._counts else []
        self._pending, self._tip = 0, False  # the newest point, kept, is where the next stride counts from

    def smoothed(self, weight: float) -> list[float]:
        """The debiased EMA at each stored point: tracked from the raw points when ``weight`` is one of
        ``smooth_weights``, else computed on the stored points."""
        import numpy as np

        if weight in self._acc:
            acc, n = np.asarray(self._acc[weight]), np.asarray(self._counts, dtype=np.float64)
            values = np.asarray(self.values, dtype=np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                out = debias(acc, n, weight)
            return np.where(np.isfinite(values) & (n > 0), out, values).tolist()
        if weight <= 0 or not self.values:
            return list(self.values)
        return ema_debiased(self.values, weight).tolist()

    def rewind(self, step: float) -> None:
        """Drop points after ``step`` (a resume from an older checkpoint replays them)."""
        if not self.steps or self.steps[-1] <= step:
            return  # nothing to replay (a resume from the last step, e.g. after a graceful stop)
        while self.steps and self.steps[-1] > step:
            self.steps.pop()
            self.values.pop()
            for v in self._acc.values():
                v.pop()
            if self._counts:
                self._counts.pop()
            self._raw.pop()
        self._pending, self._tip = 0, False
        self._seen = self._raw[-1] if self._raw else 0
        # the EMA goes back to its state at the last kept point (thinned raw points after it are not replayed)
        self._n = self._counts[-1] if self._counts else 0
        self._ema = {w: v[-1] for w, v in self._acc.items() if v}

    def __len__(self) -> int:
        return len(self.steps)


def split_is_train(name: str, metric: str, metrics: tuple[str, ...]) -> bool:
    return name.startswith("train/") and metric in metrics


# keys of a metrics row that place it (or are the format's own) and are never plotted as a series
BOOKKEEPING_KEYS = frozenset({"v", "t", "step", "epoch", "split", "event", COUNT_KEY})


def is_plottable(key: str, value: Any) -> bool:
    """A row value that makes a series: any number (not a bool) under a key that is not bookkeeping."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and key not in BOOKKEEPING_KEYS


@dataclass
class RunSeries:
    """Every series of one run, fed incrementally from tailer rows.

    Any numeric key a job logs becomes a series ``split/key`` (``train/grad_norm``, ``val/acc_style``): there is no
    allow-list. Memory stays bounded: each series holds at most ``cap`` points and a run at most ``max_series``
    series (keys past that are counted in :attr:`dropped_keys`, not stored). Non-finite values (NaN, infinities:
    only a hand-edited or foreign file has them, the writer stores null) are kept in the series as they are and
    counted in :attr:`nonfinite`; what draws the series decides what to do with them.
    """

    cap: int = 20_000
    smooth_weights: tuple[float, ...] = ()  # debiased EMAs tracked on the raw train/* points (see Series) ...
    smooth_metrics: tuple[str, ...] = ("loss", "acc", "ppl")  # ... of these metrics
    max_series: int = 64
    series: dict[str, Series] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=dict)  # latest value per series key
    max_events: int = 1000
    nonfinite: int = 0  # NaN / infinite values seen
    dropped_keys: set[str] = field(default_factory=set)  # series names refused past ``max_series`` (bounded too)

    def feed(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            if "event" in row:
                self._event(row)
                continue
            step = row.get("step")
            if not isinstance(step, (int, float)) or isinstance(step, bool) or not math.isfinite(step):
                continue
            count = row.get(COUNT_KEY, 1)
            for key, val in row.items():
                if is_plottable(key, val):
                    self._append(series_key(row, key), key, step, float(val), count)
            if "epoch" in row:
                self.last["epoch"] = row["epoch"]
            self.last["step"] = step

    def _append(self, name: str, key: str, step: float, value: float, count: Any) -> None:
        series = self.series.get(name)
        if series is None:
            if len(self.series) >= self.max_series:
                if len(self.dropped_keys) < self.max_series:
                    self.dropped_keys.add(name)
                return
            weights = self.smooth_weights if split_is_train(name, key, self.smooth_metrics) else ()
            series = self.series[name] = Series(self.cap, smooth_weights=weights)
        if not math.isfinite(value):
            self.nonfinite += 1
        series.append(step, value, count if isinstance(count, int) and count > 0 else 1)
        self.last[name] = value

    def metric_names(self) -> list[str]:
        """The metric keys this run logs (``loss``, ``acc``, ``grad_norm``, ...), in the order first seen."""
        return list(dict.fromkeys(name.split("/", 1)[1] for name in self.series))

    def _event(self, row: dict[str, Any]) -> None:
        self.events.append(row)
        if len(self.events) > self.max_events:
            del self.events[: len(self.events) - self.max_events]
        if row.get("event") == "resumed" and isinstance(row.get("step"), (int, float)):
            for s in self.series.values():
                s.rewind(row["step"])

    def get(self, key: str) -> Series | None:
        return self.series.get(key)


def read_series(path: str | os.PathLike[str], cap: int = 20_000, tail_bytes: int | None = None,
                smooth_weights: tuple[float, ...] = ()) -> RunSeries:
    """Build a :class:`RunSeries` from a metrics file (whole file streamed, or only its tail)."""
    rs = RunSeries(cap=cap, smooth_weights=smooth_weights)
    if tail_bytes is not None:
        rs.feed(tail_rows(path, tail_bytes))
    else:
        rs.feed(iter_rows(path))
    return rs
