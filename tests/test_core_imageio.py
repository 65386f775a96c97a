"""core.imageio: every image mode becomes sensible 8-bit pixels (vision and art inputs share it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core.imageio import stretch_to_8bit, to_mode


def _ramp16(tmp_path: Path) -> Path:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    return path


def test_16_bit_and_float_images_are_stretched_not_clipped(tmp_path: Path) -> None:
    with Image.open(_ramp16(tmp_path)) as im:
        assert im.mode.startswith("I")
        grey = np.asarray(to_mode(im, "L"))
        assert grey.min() == 0 and grey.max() == 255 and 120 < grey.mean() < 135  # plain convert: ~all white
        rgb = np.asarray(to_mode(im, "RGB"))
        assert rgb.shape == (64, 64, 3) and 120 < rgb.mean() < 135
    flt = Image.fromarray(np.linspace(0.0, 1.0, 64 * 64, dtype=np.float32).reshape(64, 64), mode="F")
    assert 120 < np.asarray(to_mode(flt, "L")).mean() < 135  # plain convert: ~all black
    assert stretch_to_8bit(np.full((3, 3), 7.5)).max() == 0


def test_transparency_goes_onto_black_and_exif_orientation_is_applied(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (4, 4), (255, 255, 255, 0))
    assert np.asarray(to_mode(rgba, "RGB")).max() == 0
    wide = Image.new("RGB", (8, 4), (200, 10, 10))
    exif = wide.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    wide.save(tmp_path / "photo.jpg", exif=exif)
    with Image.open(tmp_path / "photo.jpg") as im:
        assert to_mode(im, "RGB").size == (4, 8)


def test_art_inputs_use_it(tmp_path: Path) -> None:
    from core.art.data import load_image

    pixels = load_image(_ramp16(tmp_path), 32)
    assert pixels.shape == (32, 32, 3) and 110 < pixels.mean() < 145
