"""What the curves draw, as pure functions: which metric, the lines (smoothed, downsampled, finite, log10 on a
log axis), the picture (a fresh plotext figure each time) and the header row with the legend. No widgets here.

The metric plot shows any key the job logs: the kind's headline metric by default (``jobs.kinds.KINDS``), and
``m`` cycles through every other logged key, then off. A log axis is drawn by plotting ``log10(y)`` on a linear
axis with ticks labelled in real values (plotext's own log scale transforms its stored data in place on every
build, which is how a second build failed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from jobs.kinds import KINDS

Snapshot = dict[str, dict[str, tuple[Any, ...]]]  # key -> (steps, values[, {ema weight: smoothed}])
PALETTE = ("cyan", "orange", "green", "magenta", "blue", "red", "yellow", "white")  # plotext's colour names
RICH_COLOR = {"orange": "orange1"}  # the legend's (rich) name where it differs
SPLITS = ("train", "val", "test")
MARKERS = {"train": "braille", "val": "hd", "test": "dot"}
LEGEND_MARK = {"train": "⣀", "val": "▄", "test": "•"}
FALLBACK_METRICS = ("acc", "ppl", "top5")  # the second plot of a kind without a headline metric, if logged
MAX_ABS = 1e300  # beyond this plotext's axis arithmetic overflows; such a value counts as non-finite
DEFAULT, OFF = "<default>", "<off>"  # Curves.choice: the kind's metric, or no metric plot


@dataclass(frozen=True)
class Line:
    job: str
    split: str
    xs: list[float]
    ys: list[float]  # log10 of the values on a log axis
    color: str
    multi: bool = False  # several jobs overlaid: the label names the job

    @property
    def label(self) -> str:
        return f"{self.job} {self.split}" if self.multi else self.split

    @property
    def marker(self) -> str:
        return MARKERS.get(self.split, "braille")


@dataclass(frozen=True)
class PlotSpec:
    """What one plot draws besides its lines: the header's title and note, the axis."""

    title: str
    log_y: bool = False
    bounded: bool = False  # a fraction (accuracy): the axis stays within [0, 1]
    note: str = ""  # e.g. "3 non-finite values skipped"
    hidden: int = 0  # points left out: non-positive on a log axis


# ============================================================================================ which metric


def is_fraction(metric: str) -> bool:
    """Accuracy-like keys (``acc``, ``acc_style``, ``val_acc``, ``top5``) are fractions in [0, 1]."""
    return metric == "acc" or metric.startswith(("acc_", "top")) or metric.endswith("_acc")


def default_metric(kind: str | None, names: list[str]) -> str | None:
    """The second plot's metric: the kind's headline metric, else the first of acc/ppl/top5 the job logs."""
    spec = KINDS.get(kind or "")
    if spec is not None and spec.metric:
        return spec.metric
    return next((m for m in FALLBACK_METRICS if m in names), None)


def metric_choices(kind: str | None, names: list[str]) -> list[str | None]:
    """What ``m`` cycles through: the default metric, every other key the job logs (not loss), then off."""
    first = default_metric(kind, names)
    rest = sorted(n for n in names if n not in ("loss", first))
    return [*([first] if first else []), *rest, None]


def log_by_default(kind: str | None, metric: str | None) -> bool:
    """Perplexity spans orders of magnitude (thousands at step 0, ~2 at the end): a log axis unless asked."""
    spec = KINDS.get(kind or "")
    return bool(spec is not None and spec.log_metric and metric == spec.metric)


# ============================================================================================ lines


def _drawable(xs: Any, ys: Any, log_y: bool) -> tuple[Any, Any, int]:
    """The points plotext can draw: finite, within ``MAX_ABS``; on a log axis only positive values, as log10.
    Returns (xs, ys, how many were left out for being non-positive on the log axis)."""
    import numpy as np

    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y) & (np.abs(x) < MAX_ABS) & (np.abs(y) < MAX_ABS)
    hidden = 0
    if log_y:
        positive = y > 0
        hidden = int(np.count_nonzero(ok & ~positive))
        ok &= positive
    x, y = x[ok], y[ok]
    return x, (np.log10(y) if log_y else y), hidden


def build_lines(snapshot: Snapshot, metric: str, smoothing: float, points: int,
                log_y: bool = False) -> tuple[list[Line], int]:
    """Lines for ``metric`` of every job in ``snapshot``: train smoothed (EMA ``smoothing``), val/test raw.
    Returns the lines and the number of points a log axis cannot show (zero or negative)."""
    from core.smoothing import downsample, ema_debiased  # numpy: not needed for the first frame

    lines, hidden = [], 0
    multi = len(snapshot) > 1
    for i, (jid, series) in enumerate(snapshot.items()):
        color = PALETTE[i % len(PALETTE)]
        for split in SPLITS:
            data = series.get(f"{split}/{metric}")
            if not data or not data[0]:
                continue
            xs, ys = data[0], data[1]
            if split == "train" and smoothing > 0:  # the watcher's full-resolution EMA, else one on the kept points
                tracked = data[2].get(smoothing) if len(data) > 2 else None
                ys = tracked if tracked is not None and len(tracked) == len(xs) else ema_debiased(ys, smoothing)
            x, y, left_out = _drawable(xs, ys, log_y)
            hidden += left_out
            if not len(x):
                continue
            dx, dy = downsample(x, y, points)
            lines.append(Line(jid, split, dx.tolist(), dy.tolist(), color, multi))
    return lines, hidden


# ============================================================================================ the picture


def tick_label(value: float) -> str:
    return f"{value:.3g}"


def log_ticks(lo: float, hi: float, n: int = 5) -> tuple[list[float], list[str]]:
    """Tick positions in log10 space between ``lo`` and ``hi`` and their labels in real values: whole decades
    where the range spans two or more, else ``n`` evenly spaced ones."""
    decades = [float(d) for d in range(math.ceil(lo), math.floor(hi) + 1)]
    if len(decades) >= 2:
        step = max(1, math.ceil(len(decades) / n))
        positions = decades[::step]
    elif hi > lo:
        positions = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
    else:
        positions = [lo]
    return positions, [tick_label(10 ** p) for p in positions]


def _y_range(lines: list[Line]) -> tuple[float, float] | None:
    ys = [y for line in lines for y in line.ys]
    return (min(ys), max(ys)) if ys else None


def configure(plt: Any, lines: list[Line], spec: PlotSpec) -> None:
    """Set up a fresh plotext figure for ``lines`` (cheap: the expensive part is ``plt.build()``). The title and
    legend are drawn by the widget above the picture, where they cover no curve."""
    plt.clear_data()
    plt.clear_figure()
    if not lines:
        plt.xlabel("no data yet")
        return
    for line in lines:
        plt.plot(line.xs, line.ys, color=line.color, marker=line.marker)
    span = _y_range(lines)
    if span is None:
        return
    lo, hi = span
    if spec.log_y:
        pad = max(0.02, 0.03 * (hi - lo))
        plt.ylim(lo - pad, hi + pad)
        plt.yticks(*log_ticks(lo, hi))
    elif spec.bounded and 0.0 <= lo and hi <= 1.0:
        pad = max(0.01, 0.05 * (hi - lo))
        plt.ylim(max(0.0, lo - pad), min(1.0, hi + pad))


def build_picture(size: tuple[int, int], theme: str, lines: list[Line], spec: PlotSpec) -> Text:
    """The plot area (without the header row) as rich Text, built on a figure of its own."""
    from textual_plotext.plot import Plot

    plt = Plot()
    configure(plt, lines, spec)
    plt.plotsize(*size)
    plt._set_size(*size)
    plt.theme(theme)
    return Text.from_ansi(plt.build())


def header(spec: PlotSpec, lines: list[Line], width: int) -> Text:
    """One row above the plot: the title, a legend (one colour per job, one mark per split) and a note."""
    out = Text(no_wrap=True, overflow="ellipsis", end="")
    out.append(spec.title + (" log" if spec.log_y else ""), style="bold")
    jobs = list(dict.fromkeys((ln.job, ln.color) for ln in lines))
    splits = list(dict.fromkeys(ln.split for ln in lines))
    if len(jobs) > 1:
        for job, color in jobs:
            out.append("  ■ ", style=RICH_COLOR.get(color, color))
            out.append(job)
    for split in splits:
        out.append(f"  {LEGEND_MARK.get(split, '·')} ", style=RICH_COLOR.get(jobs[0][1], jobs[0][1]) if len(jobs) == 1 else "")
        out.append(split)
    notes = [n for n in (spec.note, f"{spec.hidden} ≤0 not shown" if spec.hidden else "") if n]
    if notes:
        out.append("  " + " · ".join(notes), style="yellow")
    out.truncate(max(1, width), overflow="ellipsis")
    return out
