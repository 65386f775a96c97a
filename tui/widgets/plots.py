"""Live training curves: a loss plot (train and val) and a metric plot, overlaying the selected jobs.

The lines and pictures come from pure helpers (:mod:`tui.widgets.curve_lines`); the widgets only draw. Redraws are
throttled by a timer: new data marks the plots dirty, a 4 Hz tick redraws. Every picture is built on a fresh
plotext figure from plain data, so nothing a file holds (no points, NaN, infinities, huge or non-positive values
on a log axis) and no resize can fail a redraw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from tui.guard import safe_render
from tui.widgets.curve_lines import (
    DEFAULT,
    OFF,
    Line,
    PlotSpec,
    Snapshot,
    build_lines,
    build_picture,
    default_metric,
    header,
    is_fraction,
    log_by_default,
    metric_choices,
)


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
