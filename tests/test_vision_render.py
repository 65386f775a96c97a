"""The renderer: exact ANSI for known arrays, 256-colour fallback, colour maps, overlay, PNG, rich Text."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import render
from core.colormaps import COLORMAPS
from tests.conftest import subprocess_env

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def test_truecolor_half_blocks_exact() -> None:
    img = np.array([[RED, GREEN], [BLUE, WHITE]], dtype=np.uint8)
    out = render.to_ansi(img, mode="truecolor")
    # one text row: top pixel = background, bottom pixel = foreground of '▄'
    assert out == ("\x1b[38;2;0;0;255;48;2;255;0;0m▄"
                   "\x1b[38;2;255;255;255;48;2;0;255;0m▄\x1b[0m")


def test_odd_height_uses_upper_half_and_repeated_codes_are_skipped() -> None:
    img = np.zeros((3, 2), dtype=np.float32)
    img[2] = 1.0
    lines = render.to_ansi(img, mode="truecolor").split("\n")
    assert len(lines) == 2
    assert lines[0] == "\x1b[38;2;0;0;0;48;2;0;0;0m▄▄\x1b[0m"  # same colours: one escape for both cells
    assert lines[1] == "\x1b[0;38;2;255;255;255m▀▀\x1b[0m"


def test_256_colour_fallback() -> None:
    img = np.array([[RED], [WHITE]], dtype=np.uint8)
    assert render.to_ansi(img, mode="256") == "\x1b[38;5;231;48;5;196m▄\x1b[0m"
    idx = render.rgb_to_256(np.array([[0, 0, 0], [128, 128, 128], [0, 0, 255], [95, 135, 175]], dtype=np.uint8))
    assert idx.tolist() == [16, 244, 21, 16 + 36 * 1 + 6 * 2 + 3]


def test_truecolor_codes_are_the_ones_rich_writes() -> None:
    from rich.color import Color

    rng = np.random.default_rng(1)
    colours = rng.integers(0, 256, (500, 3)).astype(np.uint8)
    index, fg, bg = render._sgr_params(colours.reshape(1, -1, 3), "truecolor")
    for i, c in enumerate(colours):
        rich_colour = Color.from_rgb(*(int(v) for v in c))
        assert fg[index[0, i]] == ";".join(rich_colour.get_ansi_codes(foreground=True))
        assert bg[index[0, i]] == ";".join(rich_colour.get_ansi_codes(foreground=False))


def _rich_256(rgb: tuple[int, int, int]) -> int:
    from rich.color import Color, ColorSystem

    number = Color.from_rgb(*rgb).downgrade(ColorSystem.EIGHT_BIT).number
    assert number is not None
    return number


def test_the_256_colour_downgrade_is_richs() -> None:
    """A 256-colour terminal shows each pixel as rich would show that colour anywhere else (its saturation test
    for greys, its cube rounding), not as a renderer-private nearest-colour search."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(0, 256, 15)] * 3, indexing="ij"), -1).reshape(-1, 3)
    colours = np.concatenate([grid, rng.integers(0, 256, (2000, 3))]).astype(np.uint8)
    want = [_rich_256(tuple(int(v) for v in c)) for c in colours]
    assert render.rgb_to_256(colours).tolist() == want
    assert render.rgb_to_256(colours.reshape(2, -1, 3)).shape == (2, len(colours) // 2)


def test_256_colour_pictures_use_richs_numbers_and_skip_repeats() -> None:
    a, b, c = (200, 30, 40), (120, 125, 118), (10, 200, 90)  # a colour, a near-grey, another colour
    img = np.array([[a, a, b], [c, c, a], [b, b, c]], dtype=np.uint8)
    na, nb, nc = (_rich_256(x) for x in (a, b, c))
    lines = render.to_ansi(img, mode="256").split("\n")
    assert lines == [f"\x1b[38;5;{nc};48;5;{na}m▄▄\x1b[38;5;{na};48;5;{nb}m▄\x1b[0m",
                     f"\x1b[0;38;5;{nb}m▀▀\x1b[0;38;5;{nc}m▀\x1b[0m"]


def test_pictures_keep_their_colours_without_a_terminal_and_under_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    """The picture is the colours: ``to_ansi`` writes them whatever the environment says (as before rich drew
    them); the CLI prints them with ``color=True``."""
    img = np.array([[RED], [WHITE]], dtype=np.uint8)
    plain = render.to_ansi(img, mode="256"), render.to_ansi(img, mode="truecolor")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")
    assert (render.to_ansi(img, mode="256"), render.to_ansi(img, mode="truecolor")) == plain


def test_colour_mode_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLORTERM", "truecolor")
    assert render.color_mode() == "truecolor"
    monkeypatch.setenv("COLORTERM", "")
    assert render.color_mode() == "256"


def test_size_to_fit() -> None:
    img = np.random.default_rng(0).random((100, 200))
    lines = render.to_ansi(img, max_width=50, mode="256").split("\n")
    assert len(lines) == 13 and all(line.count("▄") + line.count("▀") == 50 for line in lines)
    assert render.fit_size(28, 28, 14) == (14, 14)
    assert render.fit_size(100, 50, 100, max_rows=10) == (20, 10)


def test_colormaps_and_overlay() -> None:
    assert set(COLORMAPS) >= {"viridis", "inferno", "jet"}
    for lut in COLORMAPS.values():
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert COLORMAPS["viridis"][0].tolist() == [68, 1, 84] and COLORMAPS["viridis"][255].tolist() == [253, 231, 37]
    assert COLORMAPS["jet"][0].tolist() == [0, 0, 128] and COLORMAPS["jet"][255].tolist() == [128, 0, 0]
    heat = np.array([[0.0, 1.0]])
    np.testing.assert_array_equal(render.apply_colormap(heat, "inferno"), COLORMAPS["inferno"][[[0, 255]]])
    base = np.zeros((1, 2), dtype=np.float32)
    out = render.overlay(base, heat, "jet", alpha=0.5)
    assert out.tolist() == [[[0, 0, 64], [64, 0, 0]]]
    assert render.overlay(base, heat, "jet", alpha=0.0).max() == 0
    big = render.overlay(np.zeros((8, 8)), np.ones((2, 2)), "viridis", alpha=1.0)  # heat upsampled to the image
    assert big.shape == (8, 8, 3) and (big == COLORMAPS["viridis"][255]).all()
    with pytest.raises(ValueError, match="unknown colour map"):
        render.apply_colormap(heat, "rainbow")


def test_png_round_trip(tmp_path: Path) -> None:
    from PIL import Image

    img = np.array([[RED, GREEN], [BLUE, WHITE]], dtype=np.uint8)
    path = render.save_png(img, tmp_path / "x.png", scale=3)
    back = np.asarray(Image.open(path))
    assert back.shape == (6, 6, 3) and back[0, 0].tolist() == list(RED) and back[5, 5].tolist() == list(WHITE)


def test_rich_text() -> None:
    img = np.array([[RED, GREEN], [BLUE, WHITE], [WHITE, RED]], dtype=np.uint8)
    text = render.to_rich_text(img)
    assert text.plain == "▄▄\n▀▀"
    first = text.spans[0].style
    assert first.color.triplet == (0, 0, 255) and first.bgcolor.triplet == (255, 0, 0)


def test_tile_grid_and_normalize() -> None:
    grid = render.tile_grid(np.ones((5, 2, 3)), pad=1)
    assert grid.shape == (2 * 3 + 1, 3 * 4 + 1) and grid.sum() == 30
    assert render.normalize01(np.array([2.0, 4.0])).tolist() == [0.0, 1.0]
    assert render.normalize01(np.array([3.0, 3.0])).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("module", ["core.render", "core.colormaps", "core.plotpng", "jobs.cnn", "tui.cli_vision"])
def test_light_modules_do_not_import_torch(module: str) -> None:
    code = f"import {module}, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
