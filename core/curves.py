"""``training_curves.png`` from a metrics log, drawn with Pillow (no matplotlib). No torch."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from core.metrics import read_series

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], title: str,
           series: dict[str, tuple[list[float], list[float]]]) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=(180, 180, 180))
    draw.text((x0 + 6, y0 + 4), title, fill=(0, 0, 0))
    pts = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys)]
    if not pts:
        draw.text((x0 + 6, y0 + 24), "no data", fill=(120, 120, 120))
        return
    xmin, xmax = min(p[0] for p in pts), max(p[0] for p in pts)
    ymin, ymax = min(p[1] for p in pts), max(p[1] for p in pts)
    xmax, ymax = (xmax if xmax > xmin else xmin + 1), (ymax if ymax > ymin else ymin + 1e-9 + abs(ymin) * 0.01)
    px0, py0, px1, py1 = x0 + 50, y0 + 22, x1 - 10, y1 - 24

    def to_px(x: float, y: float) -> tuple[float, float]:
        return px0 + (x - xmin) / (xmax - xmin) * (px1 - px0), py1 - (y - ymin) / (ymax - ymin) * (py1 - py0)

    for frac in (0.0, 0.5, 1.0):
        yv = ymin + frac * (ymax - ymin)
        _, py = to_px(xmin, yv)
        draw.line([px0, py, px1, py], fill=(230, 230, 230))
        draw.text((x0 + 4, py - 6), f"{yv:.3g}", fill=(90, 90, 90))
    draw.text((px0, py1 + 6), f"step {xmin:.0f}", fill=(90, 90, 90))
    draw.text((px1 - 70, py1 + 6), f"{xmax:.0f}", fill=(90, 90, 90))
    for i, (name, (xs, ys)) in enumerate(series.items()):
        col = COLORS[i % len(COLORS)]
        line = [to_px(x, y) for x, y in zip(xs, ys)]
        if len(line) == 1:
            cx, cy = line[0]
            draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=col)
        else:
            draw.line(line, fill=col, width=2)
        draw.text((px1 - 150, y0 + 4 + 12 * i), name, fill=col)


def plot_curves(metrics_path: str | Path, out: str | Path, panels: dict[str, list[str]] | None = None,
                max_points: int = 2000) -> Path:
    """Draw one panel per entry of ``panels`` ({title: [series keys like 'train/loss']}) into a PNG."""
    from core.smoothing import downsample

    rs = read_series(metrics_path)
    panels = panels or {"loss": ["train/loss", "val/loss"], "accuracy": ["train/acc", "val/acc", "test/acc"]}
    panels = {t: keys for t, keys in panels.items() if any(rs.get(k) for k in keys)} or {"loss": []}
    w, h = 640, 260
    img = Image.new("RGB", (w, h * len(panels)), "white")
    draw = ImageDraw.Draw(img)
    for i, (title, keys) in enumerate(panels.items()):
        data = {}
        for k in keys:
            s = rs.get(k)
            if s is not None and len(s):
                xs, ys = downsample(s.steps, s.values, max_points)
                data[k] = (xs.tolist(), ys.tolist())
        _panel(draw, (4, i * h + 4, w - 4, (i + 1) * h - 4), title, data)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp.png")
    img.save(tmp)
    tmp.replace(out)
    return out
