"""``training_curves.png`` straight from a metrics log: series are read (bounded memory), downsampled, and drawn
by :mod:`core.plotpng`. No torch."""

from __future__ import annotations

from pathlib import Path

from core.metrics import read_series
from core.plotpng import Panel, line_chart_png
from core.smoothing import downsample

DEFAULT_PANELS = {"loss": ["train/loss", "val/loss"], "accuracy": ["train/acc", "val/acc", "test/acc"]}


def plot_curves(metrics_path: str | Path, out: str | Path, panels: dict[str, list[str]] | None = None,
                max_points: int = 2000, train_ema: float = 0.0) -> Path:
    """One panel per entry of ``panels`` (``{title: ['train/loss', ...]}``); panels without data are left out.

    ``train_ema`` > 0 smooths the per-step ``train/*`` series (debiased EMA on full resolution, then downsampled).
    """
    rs = read_series(metrics_path, smooth_weights=(train_ema,) if train_ema > 0 else ())
    drawn = []
    for title, keys in (panels or DEFAULT_PANELS).items():
        series = {}
        for key in keys:
            s = rs.get(key)
            if s is not None and len(s):
                values = s.smoothed(train_ema) if train_ema and key.startswith("train/") else s.values
                xs, ys = downsample(s.steps, values, max_points)
                series[key] = (xs.tolist(), ys.tolist())
        if series:
            drawn.append(Panel(title, series))
    return line_chart_png(out, drawn or [Panel("loss")])
