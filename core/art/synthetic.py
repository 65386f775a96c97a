"""A procedural art set in the WikiArt layout, for testing and demonstrating the whole chain offline. No torch.

Each *style* is a family of strokes, a palette family and a texture; each *artist* a variation of their style
(hue shift, stroke scale, density); each *genre* a composition (horizon, central motif, framing). The labels are
learnable from pixels, so a small CNN reaches well above chance on every head in seconds.
"""

from __future__ import annotations

import colorsys
import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from core.art.labels import ARTISTS, GENRES, STYLES, artist_genres, artist_styles

STROKES = ("dots", "dabs", "long", "swirl", "blocks", "drips", "smooth", "hatch", "rings")


@dataclass(frozen=True)
class StyleLook:
    stroke: str
    hue: float
    sat: float
    contrast: float
    density: int
    size: float


@dataclass(frozen=True)
class ArtistLook:
    hue_shift: float
    scale: float
    density: float


def _unit(key: str) -> float:
    """A stable pseudo-random number in [0, 1) for a label (independent of Python's hash seed)."""
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 2**32


def style_look(style: str) -> StyleLook:
    i = STYLES.index(style)
    return StyleLook(stroke=STROKES[i % len(STROKES)], hue=(i * 0.381966) % 1.0, sat=0.35 + 0.6 * _unit(style + "s"),
                     contrast=0.4 + 0.5 * _unit(style + "c"), density=40 + int(80 * _unit(style + "d")),
                     size=0.05 + 0.12 * _unit(style + "z"))


def artist_look(artist: str) -> ArtistLook:
    return ArtistLook(hue_shift=0.18 * (_unit(artist + "h") - 0.5), scale=0.6 + 0.9 * _unit(artist + "k"),
                      density=0.6 + 0.8 * _unit(artist + "n"))


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def _composition(draw: ImageDraw.ImageDraw, genre: str, size: int, look: StyleLook, art: ArtistLook,
                 rng: np.random.Generator) -> None:
    g = GENRES.index(genre)
    hue = look.hue + art.hue_shift
    horizon = (None, 0.3, 0.5, 0.7)[g % 4]
    sky, ground = _rgb(hue + 0.5, look.sat * 0.6, 0.9), _rgb(hue, look.sat, 0.35 + 0.3 * look.contrast)
    if horizon is None:
        draw.rectangle([0, 0, size, size], fill=_rgb(hue + 0.1 * (g % 3), look.sat * 0.5, 0.6))
    else:
        draw.rectangle([0, 0, size, int(horizon * size)], fill=sky)
        draw.rectangle([0, int(horizon * size), size, size], fill=ground)
    motif = (g // 4) % 5
    cx, cy = size * (0.3 + 0.4 * ((g * 7) % 5) / 4), size * (0.35 + 0.3 * ((g * 3) % 4) / 3)
    r = size * (0.12 + 0.05 * (g % 3))
    col = _rgb(hue + 0.33, look.sat, 0.9 - 0.5 * look.contrast)
    box = [cx - r, cy - r * 1.3, cx + r, cy + r * 1.3]
    if motif == 1:
        draw.ellipse(box, fill=col)
    elif motif == 2:
        draw.rectangle(box, fill=col)
    elif motif == 3:
        draw.polygon([(cx, cy - 1.5 * r), (cx - r, cy + r), (cx + r, cy + r)], fill=col)
    elif motif == 4:
        for k in range(3):
            draw.ellipse([cx - r + k * r * 0.6, cy, cx - r * 0.4 + k * r * 0.6, cy + r * 0.6], fill=col)
    if g % 2:  # a frame-like border for half the genres
        draw.rectangle([0, 0, size - 1, size - 1], outline=_rgb(hue + 0.6, 0.3, 0.2), width=max(1, size // 32))


def _strokes(draw: ImageDraw.ImageDraw, size: int, look: StyleLook, art: ArtistLook,
             rng: np.random.Generator) -> None:
    n = int(look.density * art.density)
    length = size * look.size * art.scale
    hue = look.hue + art.hue_shift
    for _ in range(n):
        x, y = rng.uniform(0, size, 2)
        col = _rgb(hue + rng.normal(0, 0.06), look.sat * rng.uniform(0.7, 1.1),
                   0.5 + look.contrast * rng.uniform(-0.5, 0.5))
        w = max(1, int(length * 0.25))
        kind = look.stroke
        if kind == "dots":
            d = max(1.0, length * 0.25)
            draw.ellipse([x - d, y - d, x + d, y + d], fill=col)
        elif kind == "dabs":
            a = rng.uniform(0, np.pi)
            draw.line([x, y, x + np.cos(a) * length * 0.5, y + np.sin(a) * length * 0.5], fill=col, width=w + 1)
        elif kind == "long":
            a = 0.3 + rng.normal(0, 0.1)
            draw.line([x, y, x + np.cos(a) * length * 2, y + np.sin(a) * length * 2], fill=col, width=max(1, w // 2))
        elif kind == "swirl":
            pts = [(x + np.cos(t) * length * t / 6, y + np.sin(t) * length * t / 6) for t in np.linspace(0, 6, 8)]
            draw.line(pts, fill=col, width=max(1, w // 2))
        elif kind == "blocks":
            s = length * 0.8
            draw.rectangle([x, y, x + s, y + s * rng.uniform(0.5, 1.5)], fill=col)
        elif kind == "drips":
            draw.line([x, y, x + rng.normal(0, 2), y + length * 1.5], fill=col, width=1)
        elif kind == "smooth":
            draw.ellipse([x - length, y - length * 0.5, x + length, y + length * 0.5], fill=col)
        elif kind == "hatch":
            draw.line([x, y, x + length, y + length], fill=col, width=1)
            draw.line([x + length, y, x, y + length], fill=col, width=1)
        else:  # rings
            r = length * 0.6
            draw.ellipse([x - r, y - r, x + r, y + r], outline=col, width=1)


def render(artist: str, style: str, genre: str, seed: int, size: int = 64) -> Image.Image:
    """One painting of ``artist`` in ``style`` showing ``genre``."""
    rng = np.random.default_rng(seed)
    look, art = style_look(style), artist_look(artist)
    img = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(img)
    _composition(draw, genre, size, look, art, rng)
    _strokes(draw, size, look, art, rng)
    if look.stroke == "smooth":
        img = img.filter(ImageFilter.GaussianBlur(radius=size / 64))
    return img


def sample_labels(n: int, seed: int) -> list[tuple[str, str, str]]:
    """Triples drawn as the explanation dataset draws them: artist first, then one of their styles and genres."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        artist = ARTISTS[int(rng.integers(len(ARTISTS)))]
        styles, genres = artist_styles(artist), artist_genres(artist)
        out.append((artist, styles[int(rng.integers(len(styles)))], genres[int(rng.integers(len(genres)))]))
    return out


def write_dataset(out: str | Path, n: int, seed: int = 0, size: int = 64) -> Path:
    """Write ``n`` images and ``labels.csv`` (``path,artist,style,genre``) under ``out``. Returns the CSV path."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (artist, style, genre) in enumerate(sample_labels(n, seed)):
        rel = f"images/{i:06d}.png"
        render(artist, style, genre, seed * 1_000_003 + i, size).save(out / rel, optimize=False)
        rows.append((rel, artist, style, genre))
    csv_path = out / "labels.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "artist", "style", "genre"])
        w.writerows(rows)
    (out / "meta.json").write_text(json.dumps({"n": n, "seed": seed, "size": size, "source": "ncanvas synthetic"}))
    return csv_path
