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


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` (no pixel data): what PIL reads before it refuses."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_one_clear_line(tmp_path: Path, monkeypatch) -> None:
    import pytest

    from core.errors import NcanvasError
    from core.imageio import open_image

    huge = _png_header(tmp_path / "huge.png", 30000, 30000)
    with pytest.raises(NcanvasError, match=r"huge.png: image too large: 30000×30000 pixels, over the "
                                           r"178,956,970 pixels PIL decodes safely; downscale it first$"):
        open_image(huge)
    Image.new("RGB", (120, 100)).save(tmp_path / "small.jpg")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4000)
    with pytest.raises(NcanvasError, match="image too large: 120×100 pixels, over the 8,000 pixels"):
        open_image(tmp_path / "small.jpg")
    from core.art.data import load_image

    with pytest.raises(NcanvasError, match="image too large: 120×100 pixels"):
        load_image(tmp_path / "small.jpg", 32)  # art training reads through the same path


def test_open_image_errors(tmp_path: Path) -> None:
    import pytest

    from core.errors import NcanvasError
    from core.imageio import open_image

    (tmp_path / "notes.png").write_text("not an image")
    data = (_ramp16(tmp_path)).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    for name, msg in (("nope.png", "image not found"), ("", "is a directory"), ("notes.png", "is not an image"),
                      ("cut.png", "is truncated or corrupt")):
        with pytest.raises(NcanvasError, match=msg):
            open_image(tmp_path / name)
    assert open_image(tmp_path / "ramp16.png").size == (64, 64)
