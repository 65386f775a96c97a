"""Live training curves: a loss plot (train and val) and a metric plot (accuracy or perplexity), overlaying jobs.

Pure helpers build the lines (smoothing on the full stored series, then downsampling to the plot width); the
widgets only draw. Redraws are throttled by a timer: new data marks the plots dirty, a 4 Hz tick redraws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual_plotext import PlotextPlot

Snapshot = dict[str, dict[str, tuple[Any, ...]]]  # key -> (steps, values[, {ema weight: smoothed}])
PALETTE = ("cyan", "orange", "green", "magenta", "blue", "red", "yellow", "white")
METRIC_FOR_KIND = {"cnn": "acc", "artcnn": "acc", "llm": "ppl", "gpt2": "ppl"}
FALLBACK_METRICS = ("acc", "ppl", "top5")


@dataclass(frozen=True)
class Line:
    label: str
    xs: list[float]
    ys: list[float]
    color: str
    marker: str = "braille"


def metric_for(kind: str | None, series: dict[str, Any]) -> str | None:
    """The second plot's metric: by kind, else the first of acc/ppl/top5 the job logs."""
    if kind in METRIC_FOR_KIND:
        return METRIC_FOR_KIND[kind]
    for metric in FALLBACK_METRICS:
        if f"val/{metric}" in series or f"train/{metric}" in series:
            return metric
    return None


def fast_ema(values: list[float], weight: float) -> Any:
    """``core.smoothing.ema_debiased`` vectorised in blocks (the Python loop costs ~5 ms per 4000 points,
    which is most of a redraw with 8 jobs overlaid). Within a block the recurrence is a scaled cumulative
    sum; blocks are as long as ``weight ** -k`` stays below ~1e250 (no overflow)."""
    import math

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


def build_lines(snapshot: Snapshot, metric: str, smoothing: float, points: int, log_y: bool = False) -> list[Line]:
    """Lines for ``metric`` of every job in ``snapshot``: train smoothed (EMA ``smoothing``), val raw."""
    from core.smoothing import downsample  # numpy: not needed for the first frame

    lines = []
    for i, (jid, series) in enumerate(snapshot.items()):
        color = PALETTE[i % len(PALETTE)]
        for split in ("train", "val"):
            data = series.get(f"{split}/{metric}")
            if not data or not data[0]:
                continue
            xs, ys = data[0], data[1]
            if split == "train" and smoothing > 0:  # the watcher's full-resolution EMA, else one on the kept points
                tracked = data[2].get(smoothing) if len(data) > 2 else None
                ys = tracked if tracked is not None and len(tracked) == len(xs) else fast_ema(ys, smoothing)
            if log_y:  # a log axis cannot show zero or negative values; drop them instead of failing
                pairs = [(x, y) for x, y in zip(xs, ys) if y > 0]
                xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
                if not xs:
                    continue
            dx, dy = downsample(xs, ys, points)
            label = f"{jid} {split}" if len(snapshot) > 1 else split
            lines.append(Line(label, dx.tolist(), dy.tolist(), color, "braille" if split == "train" else "hd"))
    return lines


def configure(plt: Any, title: str, lines: list[Line], log_y: bool) -> None:
    """Set up a plotext figure for ``lines`` (cheap: the expensive part is ``plt.build()``)."""
    plt.clear_data()
    plt.clear_figure()
    plt.title(title)
    plt.yscale("log" if log_y else "linear")
    if not lines:
        plt.xlabel("no data yet")
    for line in lines:
        plt.plot(line.xs, line.ys, label=line.label, color=line.color, marker=line.marker)


class CurvePlot(PlotextPlot):
    """One plotext plot drawn from a list of :class:`Line`.

    plotext's ``build()`` takes tens of milliseconds for many lines, so a thread worker builds each new picture
    on its own figure and ``render`` shows the latest one of the right size; only a size change (before the
    worker caught up) builds on the UI thread.
    """

    def __init__(self, title: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.lines: list[Line] = []
        self.log_y = False
        self._generation = 0
        self._built: tuple[int, tuple[int, int], Text] | None = None  # (generation, size, picture)

    def draw(self, lines: list[Line], log_y: bool, title: str | None = None) -> None:
        self.lines, self.log_y = lines, log_y
        if title is not None:
            self.title = title
        configure(self.plt, self.title, lines, log_y)  # the UI-thread fallback stays current
        self._generation += 1
        self._request_build()

    def on_resize(self) -> None:
        self._request_build()

    def _request_build(self) -> None:
        if not self.is_mounted or self.size.width <= 0 or self.size.height <= 0:
            self.refresh()
            return
        theme = self._get_plotext_theme_name(self.app.theme)
        self._build(self._generation, (self.size.width, self.size.height), theme, self.title, self.lines,
                    self.log_y)

    @work(thread=True, exclusive=True, group="plot-build")
    def _build(self, generation: int, size: tuple[int, int], theme: str, title: str, lines: list[Line],
               log_y: bool) -> None:
        from textual_plotext.plot import Plot

        try:
            plt = Plot()  # a figure of its own: the UI thread may be building self.plt at the same time
            configure(plt, title, lines, log_y)
            plt.plotsize(*size)
            plt._set_size(*size)
            plt.theme(theme)
            picture = Text.from_ansi(plt.build())
        except Exception:  # noqa: BLE001 - e.g. the theme not registered yet: render() builds on the UI thread
            return
        self.app.call_from_thread(self._built_one, generation, size, picture)

    def _built_one(self, generation: int, size: tuple[int, int], picture: Text) -> None:
        if generation == self._generation:
            self._built = (generation, size, picture)
            self.refresh()

    def render(self) -> Any:
        built = self._built
        if built is not None and built[0] == self._generation and built[1] == (self.size.width, self.size.height):
            return built[2]
        return super().render()


class Curves(Horizontal):
    """The curves of the selected jobs. Attributes down: set :attr:`snapshot` and :attr:`kinds`."""

    DEFAULT_CSS = """
    Curves { height: 1fr; min-height: 8; }
    Curves > CurvePlot { width: 1fr; }
    Curves > #metric-plot.-hidden { display: none; }
    Curves > #metric-plot.-off { display: none; }
    """

    log_y: reactive[bool] = reactive(False)
    smoothing: reactive[float] = reactive(0.6)
    points: int = 240  # braille packs two points per cell: enough for a 120-column plot

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshot: Snapshot = {}
        self.kinds: dict[str, str] = {}
        self._dirty = True

    def compose(self) -> ComposeResult:
        yield CurvePlot("loss", id="loss-plot")
        yield CurvePlot("metric", id="metric-plot")

    def on_mount(self) -> None:
        self.set_interval(0.25, self._flush)
        self._flush()

    def set_data(self, snapshot: Snapshot, kinds: dict[str, str]) -> None:
        self.snapshot, self.kinds = snapshot, kinds
        self._dirty = True

    def watch_log_y(self) -> None:
        self._dirty = True

    def watch_smoothing(self) -> None:
        self._dirty = True

    def _flush(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.redraw()

    def redraw(self) -> None:
        """Draw now (tests and snapshots call this; live updates go through the throttle)."""
        loss_plot = self.query_one("#loss-plot", CurvePlot)
        metric_plot = self.query_one("#metric-plot", CurvePlot)
        # a fixed point budget (not the widget's width, which lags a layout pass behind) keeps redraws identical
        points = self.points
        title = "loss" + (f" (EMA {self.smoothing:.2f})" if self.smoothing > 0 else "") + (" log" if self.log_y else "")
        loss_plot.draw(build_lines(self.snapshot, "loss", self.smoothing, points, self.log_y), self.log_y, title)
        first = next(iter(self.snapshot), None)
        metric = metric_for(self.kinds.get(first or ""), self.snapshot.get(first or "", {}))
        metric_plot.set_class(metric is None, "-hidden")
        if metric is not None:
            metric_plot.draw(build_lines(self.snapshot, metric, self.smoothing, points, self.log_y and metric == "ppl"),
                             self.log_y and metric == "ppl", metric)
