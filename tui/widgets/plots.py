"""Live training curves: a loss plot (train and val) and a metric plot, overlaying the selected jobs.

Pure helpers build the lines (smoothing on the full stored series, then downsampling to the plot width) and the
picture; the widgets only draw. Redraws are throttled by a timer: new data marks the plots dirty, a 4 Hz tick
redraws. Every picture is built on a fresh plotext figure from plain data, so nothing a file holds (no points,
NaN, infinities, huge or non-positive values on a log axis) and no resize can fail a redraw twice.

The metric plot shows any key the job logs: the kind's headline metric by default (``jobs.kinds.KINDS``), and
``m`` cycles through every other logged key, then off. A log axis is drawn by plotting ``log10(y)`` on a linear
axis with ticks labelled in real values (plotext's own log scale transforms its stored data in place on every
build, which is how a second build failed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from jobs.kinds import KINDS
from tui.guard import safe_render

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


def fast_ema(values: list[float], weight: float) -> Any:
    """``core.smoothing.ema_debiased`` vectorised in blocks (the Python loop costs ~5 ms per 4000 points,
    which is most of a redraw with 8 jobs overlaid). Within a block the recurrence is a scaled cumulative
    sum; blocks are as long as ``weight ** -k`` stays below ~1e250 (no overflow)."""
    import numpy as np

    block = 4096 if weight <= 0 else max(16, min(4096, int(250 / max(1e-12, -math.log10(weight)))))
    x = np.asarray(values, dtype=np.float64)
    out = np.empty_like(x)
    w, carry = float(weight), 0.0
    for start in range(0, len(x), block):
        chunk = x[start:start + block]
        k = np.arange(len(chunk))
        scaled = np.cumsum(chunk * w ** -k.astype(np.float64)) if w > 0 else chunk.copy()
        last = (w ** (k + 1)) * carry + (1.0 - w) * (w ** k) * scaled if w > 0 else chunk.copy()
        n = start + k + 1
        out[start:start + len(chunk)] = last / (1.0 - w ** n)
        carry = float(last[-1])
    return out


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
    from core.smoothing import downsample  # numpy: not needed for the first frame

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
                ys = tracked if tracked is not None and len(tracked) == len(xs) else fast_ema(ys, smoothing)
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


class CurvePlot(PlotextPlot):
    """One plot drawn from a list of :class:`Line` under a header row (title, legend, notes).

    plotext's ``build()`` takes tens of milliseconds for many lines, so a thread worker builds each new picture
    and ``render`` shows the latest one of the right size; only a size change (before the worker caught up)
    builds on the UI thread. A picture that cannot be built is one line of text, never an exception.
    """

    def __init__(self, title: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.lines: list[Line] = []
        self.spec = PlotSpec(title)
        self._generation = 0
        self._built: tuple[int, tuple[int, int], Text] | None = None  # (generation, size, picture)

    @property
    def log_y(self) -> bool:
        return self.spec.log_y

    def draw(self, lines: list[Line], spec: PlotSpec) -> None:
        self.lines, self.spec, self.title = lines, spec, spec.title
        self._generation += 1
        self._request_build()

    def on_resize(self) -> None:
        self._request_build()

    def _area(self) -> tuple[int, int]:
        return self.size.width, self.size.height - 1  # the header takes the first row

    def _request_build(self) -> None:
        width, height = self._area()
        if not self.is_mounted or width <= 0 or height <= 0:
            self.refresh()
            return
        theme = self._get_plotext_theme_name(self.app.theme)
        self._build(self._generation, (width, height), theme, self.lines, self.spec)

    @work(thread=True, exclusive=True, group="plot-build")
    def _build(self, generation: int, size: tuple[int, int], theme: str, lines: list[Line], spec: PlotSpec) -> None:
        try:
            picture = build_picture(size, theme, lines, spec)
        except Exception:  # noqa: BLE001 - e.g. the theme not registered yet: render() builds on the UI thread
            return
        self.app.call_from_thread(self._built_one, generation, size, picture)

    def _built_one(self, generation: int, size: tuple[int, int], picture: Text) -> None:
        if generation == self._generation:
            self._built = (generation, size, picture)
            self.refresh()

    @safe_render
    def render(self) -> Any:
        width, height = self._area()
        top = header(self.spec, self.lines, width)
        if height <= 0:
            return top
        built = self._built
        if built is not None and built[0] == self._generation and built[1] == (width, height):
            picture = built[2]
        else:
            try:
                picture = build_picture((width, height), self._get_plotext_theme_name(self.app.theme), self.lines,
                                        self.spec)
            except Exception as e:  # noqa: BLE001 - the last resort: a plot that cannot be drawn says why
                picture = Text(f"cannot draw this plot: {type(e).__name__}: {e}", style="red")
        return Text("\n", end="").join([top, picture])


@dataclass
class CurveData:
    """What the curves show, handed down by the dashboard."""

    snapshot: Snapshot = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # job id -> kind
    names: list[str] = field(default_factory=list)  # the metric keys the first (cursor) job logs
    skipped: tuple[int, int] = (0, 0)  # (malformed lines, non-finite values) of the shown jobs


class Curves(Horizontal):
    """The curves of the selected jobs. Attributes down: :meth:`set_data`; ``m`` calls :meth:`cycle_metric`."""

    DEFAULT_CSS = """
    Curves { height: 1fr; min-height: 8; }
    Curves > CurvePlot { width: 1fr; }
    Curves > #metric-plot.-hidden { display: none; }
    """

    log_y: reactive[bool] = reactive(False)
    smoothing: reactive[float] = reactive(0.6)
    points: int = 240  # braille packs two points per cell: enough for a 120-column plot

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = CurveData()
        self.choice = DEFAULT  # the metric plot: the kind's metric, a key picked with m, or OFF
        self._dirty = True

    @property
    def snapshot(self) -> Snapshot:
        return self.data.snapshot

    def compose(self) -> ComposeResult:
        yield CurvePlot("loss", id="loss-plot")
        yield CurvePlot("metric", id="metric-plot")

    def on_mount(self) -> None:
        self.set_interval(0.25, self._flush)
        self._flush()

    def set_data(self, data: CurveData) -> None:
        self.data = data
        self._dirty = True

    def watch_log_y(self) -> None:
        self._dirty = True

    def watch_smoothing(self) -> None:
        self._dirty = True

    def _first_kind(self) -> str | None:
        first = next(iter(self.data.snapshot), None)
        return self.data.kinds.get(first or "")

    def metric_for(self, kind: str | None, names: list[str]) -> str | None:
        """The metric the second plot shows for a job of ``kind`` logging ``names``: the pick, else the default."""
        if self.choice == OFF:
            return None
        if self.choice != DEFAULT and self.choice in names:
            return self.choice
        return default_metric(kind, names)

    def cycle_metric(self, kind: str | None, names: list[str]) -> str | None:
        """``m``: the next of :func:`metric_choices` (the default, each logged key, off). Returns the new metric."""
        choices = metric_choices(kind, names)
        current = self.metric_for(kind, names)
        nxt = choices[(choices.index(current) + 1) % len(choices)] if current in choices else choices[0]
        self.choice = OFF if nxt is None else nxt
        self._dirty = True
        return nxt

    def _flush(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.redraw()

    def redraw(self) -> None:
        """Draw now (tests and snapshots call this; live updates go through the throttle)."""
        loss_plot = self.query_one("#loss-plot", CurvePlot)
        metric_plot = self.query_one("#metric-plot", CurvePlot)
        snapshot, points = self.data.snapshot, self.points  # a fixed point budget: redraws stay identical
        bad, nonfinite = self.data.skipped
        note = ", ".join(p for p in (f"{nonfinite} non-finite" if nonfinite else "",
                                     f"{bad} bad line{'s' * (bad != 1)}" if bad else "") if p)
        title = "loss" + (f" (EMA {self.smoothing:.2f})" if self.smoothing > 0 else "")
        lines, hidden = build_lines(snapshot, "loss", self.smoothing, points, self.log_y)
        loss_plot.draw(lines, PlotSpec(title, self.log_y, note=note + " skipped" if note else "", hidden=hidden))
        kind = self._first_kind()
        metric = self.metric_for(kind, self.data.names)
        metric_plot.set_class(metric is None, "-hidden")
        if metric is not None:
            log_y = self.log_y or log_by_default(kind, metric)
            lines, hidden = build_lines(snapshot, metric, self.smoothing, points, log_y)
            metric_plot.draw(lines, PlotSpec(metric, log_y, bounded=is_fraction(metric), hidden=hidden))
