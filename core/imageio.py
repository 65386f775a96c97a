"""Any PIL image to 8-bit grey or RGB, the one way every model input is made (no torch).

16-bit and float images are stretched to 8 bits (a plain ``convert`` clips them to white or black), transparency
is flattened onto black (MNIST's background), and the EXIF orientation of camera photos is applied.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageOps


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
