"""Image files and any PIL image to 8-bit grey or RGB: the one way every model input is read and made (no torch).

:func:`open_image` is the only place an image file is opened (classify, gradcam, analyze, art training), so every
bad file gives the same one-line :class:`NcanvasError`. 16-bit and float images are stretched to 8 bits (a plain
``convert`` clips them to white or black), transparency is flattened onto black (MNIST's background), and the
EXIF orientation of camera photos is applied.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import NcanvasError

MAX_SIDE = 4096  # larger images are downscaled on open: every model here takes 224 px or less
# PIL warns (on stderr, around our one line of output) about images between 89 and 179 megapixels; we downscale
# those on open instead, and it still refuses larger ones with DecompressionBombError, which is reported below.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def open_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open and fully decode an image file, with one clear error for missing, unreadable, foreign, truncated or
    huge files."""
    p = Path(path)
    if not p.exists():
        raise NcanvasError(f"image not found: {p}")
    if p.is_dir():
        raise NcanvasError(f"{p} is a directory, not an image")
    if not os.access(p, os.R_OK):
        raise NcanvasError(f"{p}: permission denied")
    try:
        return _open_and_load(p)
    except Image.DecompressionBombError:
        # PIL refuses to decode more than 2 * MAX_IMAGE_PIXELS (a few GB of RAM); its message has only the product
        raise NcanvasError(f"{p}: image too large: {_size_text(p)} pixels, over the "
                           f"{2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels PIL decodes safely; "
                           "downscale it first") from None
    except UnidentifiedImageError:
        raise NcanvasError(f"{p} is not an image (PNG, JPEG, BMP, GIF, ... expected)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise NcanvasError(f"{p} is truncated or corrupt ({str(e).splitlines()[0][:120]})") from None


def _open_and_load(p: Path) -> Image.Image:
    """Open and decode; a huge image comes back at most ``MAX_SIDE`` pixels on its long side (JPEGs are decoded
    at that size directly), so a 144-megapixel photo does not cost gigabytes downstream."""
    img: Image.Image = Image.open(p)
    try:
        big = max(img.size) > MAX_SIDE
        if big:
            img.draft(img.mode, (MAX_SIDE, MAX_SIDE))  # JPEG: decode at 1/2, 1/4 or 1/8 scale; others: no-op
        img.load()
        if big and max(img.size) > MAX_SIDE:
            img = _downscaled(img)
    except BaseException:
        img.close()  # the file handle PIL opened: a failed decode must not leak it
        raise
    return img


def _downscaled(img: Image.Image) -> Image.Image:
    w, h = img.size
    k = MAX_SIDE / max(w, h)
    if img.mode not in ("1", "L", "P", "RGB", "RGBA", "LA", "I", "F", "CMYK", "YCbCr"):
        img = to_mode(img, "RGB")  # e.g. 16-bit: stretched to 8 bits first, as every caller would do anyway
    small = img.resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.BOX)
    small.info = dict(img.info)
    return small


def _size_text(path: Path) -> str:
    """``W×H`` from the file's header, read by PIL's format plugins without the pixel-count check (which
    :func:`PIL.Image.open` applies and which refused this file); ``?`` when no plugin reads it."""
    Image.init()
    with open(path, "rb") as fp:
        prefix = fp.read(16)
        for fmt in Image.ID:
            factory, accept = Image.OPEN[fmt]
            if accept is not None and not accept(prefix):
                continue
            fp.seek(0)
            try:
                w, h = factory(fp, str(path)).size
            except Exception:  # noqa: BLE001 - not this format: try the next plugin, as Image.open does
                continue
            return f"{w}×{h}"
    return "?"


def stretch_to_8bit(a: Any) -> np.ndarray:
    """An array of any numeric dtype -> uint8, min..max stretched to 0..255 (a constant array becomes zeros)."""
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    return ((a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)).astype(np.uint8)


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """``image`` as an 8-bit ``"L"`` or ``"RGB"`` image."""
    image = ImageOps.exif_transpose(image) or image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = Image.fromarray(stretch_to_8bit(np.asarray(image)))
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return image.convert(mode)
