"""Line charts as PNG with Pillow only (no matplotlib, no torch): ``training_curves.png`` for vision runs.

A chart is a list of panels side by side; each panel has named series of (x, y) points. Axes get min/max tick
labels only: the file is a quick look, the dashboard is the interactive view.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


@dataclass
class Panel:
    title: str
    series: dict[str, tuple[Sequence[float], Sequence[float]]] = field(default_factory=dict)


def _bounds(panel: Panel) -> tuple[float, float, float, float] | None:
    xs = [x for s in panel.series.values() for x in s[0]]
    ys = [y for s in panel.series.values() for y in s[1] if y is not None]
    if not xs or not ys:
        return None
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1e-6 + abs(y0) * 0.01
    return x0, x1, y0, y1


def _draw_panel(draw: Any, panel: Panel, box: tuple[int, int, int, int]) -> None:
    left, top, right, bottom = box
    draw.text((left, top - 18), panel.title, fill=(0, 0, 0))
    draw.rectangle(box, outline=(120, 120, 120))
    b = _bounds(panel)
    if b is None:
        draw.text((left + 8, top + 8), "no data yet", fill=(120, 120, 120))
        return
    x0, x1, y0, y1 = b

    def px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top))

    draw.text((left - 4, bottom + 4), f"{x0:g}", fill=(80, 80, 80))
    draw.text((right - 30, bottom + 4), f"{x1:g}", fill=(80, 80, 80))
    draw.text((left + 4, top + 2), f"{y1:.4g}", fill=(80, 80, 80))
    draw.text((left + 4, bottom - 14), f"{y0:.4g}", fill=(80, 80, 80))
    for i, (name, (xs, ys)) in enumerate(panel.series.items()):
        colour = PALETTE[i % len(PALETTE)]
        pts = [px(x, y) for x, y in zip(xs, ys, strict=False) if y is not None]
        if len(pts) == 1:
            draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=colour)
        elif pts:
            draw.line(pts, fill=colour, width=2)
        ly = top + 10 + 14 * i
        draw.line([(right - 110, ly), (right - 96, ly)], fill=colour, width=2)
        draw.text((right - 90, ly - 6), name, fill=colour)


def line_chart_png(path: str | os.PathLike[str], panels: list[Panel], panel_size: tuple[int, int] = (420, 300)) -> Path:
    """Draw ``panels`` side by side and write a PNG atomically."""
    from PIL import Image, ImageDraw

    from core.atomic import atomic_write

    w, h = panel_size
    margin = 40
    img = Image.new("RGB", (len(panels) * (w + margin) + margin, h + 2 * margin), "white")
    draw = ImageDraw.Draw(img)
    for i, panel in enumerate(panels):
        left = margin + i * (w + margin)
        _draw_panel(draw, panel, (left, margin, left + w, margin + h))
    path = Path(path)
    atomic_write(path, lambda f: img.save(f, format="PNG"))
    return path
