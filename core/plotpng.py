"""Line charts as PNG with Pillow only (no matplotlib, no torch): ``training_curves.png`` for vision runs.

A chart is a list of panels side by side; each panel has named series of (x, y) points. Every label sits outside
the data area, so none hides a curve: the title and the legend above it, tick values (min, middle, max) and the
axis names (``step`` and the panel's quantity) below and to the left. The file is a quick look; the dashboard is
the interactive view.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
INK, GREY, FRAME = (0, 0, 0), (80, 80, 80), (120, 120, 120)
MARGIN_LEFT, MARGIN_TOP, MARGIN_BOTTOM, GAP = 76, 44, 44, 30  # room for labels around each panel's data area
SWATCH = 18  # a legend entry's colour line and the space after it


@dataclass
class Panel:
    title: str
    series: dict[str, tuple[Sequence[float], Sequence[float]]] = field(default_factory=dict)
    xlabel: str = "step"
    ylabel: str | None = None  # default: the title


@dataclass(frozen=True)
class Label:
    """A piece of text at ``xy`` (its top-left corner); ``vertical`` text reads bottom to top; a legend entry
    (``swatch``) has a short line of its colour before it."""

    text: str
    xy: tuple[int, int]
    fill: tuple[int, int, int] = GREY
    vertical: bool = False
    swatch: bool = False


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


def _size(draw: Any, text: str) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text)
    return right - left, bottom - top


def label_box(draw: Any, label: Label) -> tuple[int, int, int, int]:
    """The pixels ``label`` covers: (left, top, right, bottom)."""
    w, h = _size(draw, label.text)
    if label.vertical:
        w, h = h, w
    x, y = label.xy
    return x - (SWATCH if label.swatch else 0), y, x + w, y + h


def panel_labels(draw: Any, panel: Panel, box: tuple[int, int, int, int]) -> list[Label]:
    """Every label of a panel whose data area is ``box``, all placed outside it and apart from each other."""
    left, top, right, bottom = box
    out = [Label(panel.title, (left, top - 40), INK)]
    x = left
    for i, name in enumerate(panel.series):  # the legend: one row above the data area
        out.append(Label(name, (x + SWATCH, top - 20), PALETTE[i % len(PALETTE)], swatch=True))
        x += SWATCH + _size(draw, name)[0] + 14
    b = _bounds(panel)
    if b is None:
        return out
    x0, x1, y0, y1 = b
    ticks_x = [(left, x0), ((left + right) // 2, (x0 + x1) / 2), (right, x1)]
    for i, (px, value) in enumerate(ticks_x):
        text = f"{value:g}"
        w = _size(draw, text)[0]
        tx = px if i == 0 else (px - w if i == 2 else px - w // 2)  # the ends stay inside the panel's width
        out.append(Label(text, (tx, bottom + 5)))
    for py, value in ((top, y1), ((top + bottom) // 2, (y0 + y1) / 2), (bottom, y0)):
        text = f"{value:.4g}"
        w, h = _size(draw, text)
        ty = min(max(py - h // 2, top), bottom - h)
        out.append(Label(text, (left - 6 - w, ty)))
    w, _ = _size(draw, panel.xlabel)
    out.append(Label(panel.xlabel, ((left + right - w) // 2, bottom + 24), INK))
    ylabel = panel.ylabel if panel.ylabel is not None else panel.title
    h = _size(draw, ylabel)[0]  # its length, drawn upwards
    out.append(Label(ylabel, (left - MARGIN_LEFT + 4, (top + bottom - h) // 2), INK, vertical=True))
    return out


def _draw_label(img: Any, draw: Any, label: Label) -> None:
    if label.swatch:
        x, y = label.xy
        draw.line([(x - SWATCH + 2, y + 6), (x - 4, y + 6)], fill=label.fill, width=2)
    if not label.vertical:
        draw.text(label.xy, label.text, fill=label.fill)
        return
    from PIL import Image, ImageDraw

    w, h = _size(draw, label.text)
    strip = Image.new("RGB", (w + 2, h + 4), "white")
    ImageDraw.Draw(strip).text((0, 0), label.text, fill=label.fill)
    img.paste(strip.rotate(90, expand=True), label.xy)


def _draw_panel(img: Any, draw: Any, panel: Panel, box: tuple[int, int, int, int]) -> None:
    left, top, right, bottom = box
    draw.rectangle(box, outline=FRAME)
    for label in panel_labels(draw, panel, box):
        _draw_label(img, draw, label)
    b = _bounds(panel)
    if b is None:
        draw.text((left + 8, top + 8), "no data yet", fill=FRAME)
        return
    x0, x1, y0, y1 = b

    def px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top))

    for i, (xs, ys) in enumerate(panel.series.values()):
        colour = PALETTE[i % len(PALETTE)]
        pts = [px(x, y) for x, y in zip(xs, ys, strict=False) if y is not None]
        if len(pts) == 1:
            draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=colour)
        elif pts:
            draw.line(pts, fill=colour, width=2)


def panel_boxes(count: int, panel_size: tuple[int, int] = (420, 300)) -> tuple[tuple[int, int], list[tuple[int, int,
                                                                                                           int, int]]]:
    """The image size and each panel's data area for ``count`` panels side by side."""
    w, h = panel_size
    boxes = [(MARGIN_LEFT + i * (w + MARGIN_LEFT + GAP), MARGIN_TOP, MARGIN_LEFT + i * (w + MARGIN_LEFT + GAP) + w,
              MARGIN_TOP + h) for i in range(count)]
    return (count * (w + MARGIN_LEFT + GAP) + GAP // 2, h + MARGIN_TOP + MARGIN_BOTTOM), boxes


def line_chart_png(path: str | os.PathLike[str], panels: list[Panel], panel_size: tuple[int, int] = (420, 300)) -> Path:
    """Draw ``panels`` side by side and write a PNG atomically."""
    from PIL import Image, ImageDraw

    from core.atomic import atomic_write

    size, boxes = panel_boxes(len(panels), panel_size)
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    for panel, box in zip(panels, boxes, strict=True):
        _draw_panel(img, draw, panel, box)
    path = Path(path)
    atomic_write(path, lambda f: img.save(f, format="PNG"))
    return path
