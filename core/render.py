"""Arrays -> terminal images and PNGs. Pure numpy (Pillow only for resizing and PNG files); no torch.

Conventions: a *map* is a 2-D float array (H, W), usually in [0, 1]; an *image* is (H, W) grey or (H, W, 3)
RGB, float in [0, 1] or uint8. Terminal output uses the lower half block '▄': each character cell shows two
pixels, the top one as the background colour and the bottom one as the foreground colour.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from core.colormaps import COLORMAPS

HALF_BLOCK = "▄"
UPPER_HALF = "▀"
RESET = "\x1b[0m"
COLORMAP_NAMES = tuple(COLORMAPS)


# ---------------------------------------------------------------------------------------------- arrays

def normalize01(a: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1]; a constant array becomes zeros."""
    a = np.asarray(a, dtype=np.float32)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def to_uint8_rgb(img: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 1|3) float [0, 1] or uint8 -> (H, W, 3) uint8."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected (H, W), (H, W, 1) or (H, W, 3); got {a.shape}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return a[..., :3]


def apply_colormap(values: np.ndarray, name: str = "viridis") -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 through a 256-entry LUT."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown colour map {name!r}; maps: {', '.join(COLORMAP_NAMES)}")
    idx = (np.clip(np.nan_to_num(np.asarray(values, dtype=np.float32)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return COLORMAPS[name][idx]


def overlay(image: np.ndarray, heat: np.ndarray, cmap: str = "jet", alpha: float = 0.5) -> np.ndarray:
    """Blend a colour-mapped heat map (H, W in [0, 1]) over an image of the same size: (H, W, 3) uint8."""
    base = to_uint8_rgb(image).astype(np.float32)
    if heat.shape != base.shape[:2]:
        heat = resize(heat, base.shape[1], base.shape[0], smooth=True)
    col = apply_colormap(heat, cmap).astype(np.float32)
    return (base * (1.0 - alpha) + col * alpha + 0.5).clip(0, 255).astype(np.uint8)


def resize(a: np.ndarray, width: int, height: int, smooth: bool = False) -> np.ndarray:
    """Resize an image or map with Pillow (nearest keeps pixels crisp; ``smooth`` = bilinear)."""
    from PIL import Image

    a = np.asarray(a)
    if a.shape[:2] == (height, width):
        return a
    mode = Image.Resampling.BILINEAR if smooth else Image.Resampling.NEAREST
    if a.dtype == np.uint8:
        return np.asarray(Image.fromarray(a).resize((width, height), mode))
    chans = [a] if a.ndim == 2 else [a[..., c] for c in range(a.shape[2])]
    out = [np.asarray(Image.fromarray(c.astype(np.float32), mode="F").resize((width, height), mode)) for c in chans]
    return out[0] if a.ndim == 2 else np.stack(out, axis=2)


def fit_size(height: int, width: int, max_width: int, max_rows: int | None = None) -> tuple[int, int]:
    """Pixel size (h, w) that fits ``max_width`` cells and ``max_rows`` text rows (2 pixels per row)."""
    scale = max_width / width
    if max_rows is not None:
        scale = min(scale, 2 * max_rows / height)
    return max(1, round(height * scale)), max(1, round(width * scale))


def tile_grid(images: np.ndarray | list[np.ndarray], cols: int | None = None, pad: int = 1,
              pad_value: float = 0.0) -> np.ndarray:
    """Tile N same-sized images ((N, H, W) or (N, H, W, 3)) into one grid image with ``pad`` pixel gutters."""
    imgs = [np.asarray(i, dtype=np.float32) for i in images]
    if not imgs:
        raise ValueError("tile_grid needs at least one image")
    n = len(imgs)
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    h, w = imgs[0].shape[:2]
    shape = (rows * (h + pad) + pad, cols * (w + pad) + pad) + imgs[0].shape[2:]
    grid = np.full(shape, pad_value, dtype=np.float32)
    for k, img in enumerate(imgs):
        r, c = divmod(k, cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = img
    return grid


# ---------------------------------------------------------------------------------------------- terminal

def color_mode() -> str:
    """"truecolor" when the terminal says so ($COLORTERM), else "256"."""
    return "truecolor" if os.environ.get("COLORTERM", "").lower() in ("truecolor", "24bit") else "256"


def _rich_colours(rgb: np.ndarray, mode: str) -> tuple[np.ndarray, list[Any]]:
    """Each pixel's index (shape ``rgb.shape[:-1]``) into a table of ``rich.color.Color`` for ``mode``
    ("truecolor" or "256"): the colours rich itself would send such a terminal (``Color.downgrade``)."""
    index, colours = _unique(rgb)
    return index, [_rich_colour(r, g, b, mode) for r, g, b in colours]


def _unique(rgb: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    colours, index = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
    return index.reshape(rgb.shape[:-1]), [tuple(c) for c in colours.tolist()]


@functools.lru_cache(maxsize=1 << 16)
def _rich_colour(r: int, g: int, b: int, mode: str) -> Any:
    from rich.color import Color, ColorSystem

    return Color.from_rgb(r, g, b).downgrade(ColorSystem.TRUECOLOR if mode == "truecolor" else ColorSystem.EIGHT_BIT)


@functools.lru_cache(maxsize=1 << 16)
def _sgr_pair(r: int, g: int, b: int, mode: str) -> tuple[str, str]:
    """(foreground, background) SGR parameters rich writes for a colour in ``mode``; cached, since a picture
    repeats its colours and the panes redraw the same pictures."""
    colour = _rich_colour(r, g, b, mode)
    return ";".join(colour.get_ansi_codes(foreground=True)), ";".join(colour.get_ansi_codes(foreground=False))


def rgb_to_256(rgb: np.ndarray) -> np.ndarray:
    """The xterm-256 number rich picks for each (..., 3) uint8 colour (a grey ramp entry below 15% saturation,
    else the 6x6x6 cube)."""
    index, table = _rich_colours(np.asarray(rgb, dtype=np.uint8), "256")
    return np.array([c.number for c in table], dtype=np.int64)[index]


def _sgr_params(rgb: np.ndarray, mode: str) -> tuple[np.ndarray, list[str], list[str]]:
    """Each pixel's index into tables of SGR parameters, foreground and background (``38;2;r;g;b``,
    ``48;5;n``), written by rich for ``mode``."""
    index, colours = _unique(rgb)
    if mode == "truecolor":  # nothing to downgrade: rich's codes are 38;2;r;g;b (a test holds them to rich's)
        rgbs = [f"2;{r};{g};{b}" for r, g, b in colours]
        return index, [f"38;{c}" for c in rgbs], [f"48;{c}" for c in rgbs]
    pairs = [_sgr_pair(r, g, b, mode) for r, g, b in colours]
    return index, [p[0] for p in pairs], [p[1] for p in pairs]


def _prepare(image: np.ndarray, max_width: int | None, max_rows: int | None) -> np.ndarray:
    rgb = to_uint8_rgb(image)
    h, w = rgb.shape[:2]
    if (max_width and w > max_width) or (max_rows and h > 2 * max_rows):
        nh, nw = fit_size(h, w, max_width or w, max_rows)
        rgb = resize(rgb, nw, nh, smooth=True)
    return rgb


def to_ansi(image: np.ndarray, max_width: int | None = None, max_rows: int | None = None,
            mode: str | None = None) -> str:
    """Render an image as lines of '▄' cells with ANSI colours (``mode`` "truecolor" or "256").

    The colours are rich's (:func:`rgb_to_256` for 256 colours); an escape is written only where a cell's
    colours differ from the previous cell's. The colours are the picture: they are written whatever
    ``NO_COLOR`` or the output stream say.

    Args:
        image: (H, W) or (H, W, 3), float in [0, 1] or uint8.
        max_width: shrink (never enlarge) to at most this many character cells.
        max_rows: and at most this many text rows.
        mode: colour mode; default from :func:`color_mode`.
    """
    rgb = _prepare(image, max_width, max_rows)
    index, fg, bg = _sgr_params(rgb, mode or color_mode())
    return "\n".join(_ansi_row(index[y:y + 2], fg, bg) for y in range(0, rgb.shape[0], 2))


def _ansi_row(rows: np.ndarray, fg: list[str], bg: list[str]) -> str:
    """One text row from two pixel rows (the top as background, the bottom as the foreground of '▄'), or from
    one (an odd height's last row: '▀' on the terminal's own background)."""
    cells, last = [], ""
    for x in range(rows.shape[1]):
        top = int(rows[0, x])
        if len(rows) == 2:
            code, ch = f"\x1b[{fg[int(rows[1, x])]};{bg[top]}m", HALF_BLOCK
        else:
            code, ch = f"\x1b[0;{fg[top]}m", UPPER_HALF
        cells.append((code if code != last else "") + ch)
        last = code
    return "".join(cells) + RESET


def to_rich_text(image: np.ndarray, max_width: int | None = None, max_rows: int | None = None) -> Any:
    """The same half-block picture as a ``rich.text.Text`` (for Textual ``Static`` panes)."""
    from rich.color import Color
    from rich.style import Style
    from rich.text import Text

    rgb = _prepare(image, max_width, max_rows)
    text = Text(no_wrap=True, overflow="crop")
    for y in range(0, rgb.shape[0], 2):
        for x in range(rgb.shape[1]):
            top = Color.from_rgb(*(int(v) for v in rgb[y, x]))
            if y + 1 < rgb.shape[0]:
                bot = Color.from_rgb(*(int(v) for v in rgb[y + 1, x]))
                text.append(HALF_BLOCK, Style(color=bot, bgcolor=top))
            else:
                text.append(UPPER_HALF, Style(color=top))
        if y + 2 < rgb.shape[0]:
            text.append("\n")
    return text


# ---------------------------------------------------------------------------------------------- PNG

def save_png(image: np.ndarray, path: str | os.PathLike[str], scale: int = 1) -> Path:
    """Write an image as PNG (atomically), optionally enlarged ``scale`` times with crisp pixels."""
    from PIL import Image

    from core.atomic import atomic_write

    rgb = to_uint8_rgb(image)
    if scale > 1:
        rgb = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
    path = Path(path)
    atomic_write(path, lambda f: Image.fromarray(rgb).save(f, format="PNG"))
    return path
