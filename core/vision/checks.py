"""Checks that keep a picture or a prediction from misleading without a word. numpy only (no torch): the CLI and
the dashboard panes call them on what the vision API returned.

- :func:`cam_state`: a class activation map with no positive evidence (all zero after the ReLU: plain Grad-CAM
  gives that for a few percent of MNIST test digits at the last conv layer) or nearly flat (min-max scaling would
  stretch float noise into a confident-looking blob, often in an empty corner).
- :func:`opposite_polarity`: an image whose background is light where the training images' is dark (a black
  digit drawn on white, for an MNIST model), or the reverse; :func:`invert` flips it.
- :func:`stretch`: an image scaled to its own range, for pictures whose values fill only a sliver of [0, 1]
  (activation maximisation), so they are not shown as a black square.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

FLAT_CONTRAST = 0.1  # a map whose peak rises less than this fraction above its floor is "nearly flat"
PLAIN_BACKGROUND = 0.35  # a training mean this far from mid-grey means a plain dark (or light) background

METHOD_NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "guided": "guided backprop",
                "guided-gradcam": "guided Grad-CAM"}


def cam_state(raw: Any) -> str | None:
    """``"empty"`` when the raw map (before normalisation, after the ReLU) has no positive value, ``"flat"`` when
    its peak rises less than :data:`FLAT_CONTRAST` (relative) above its floor, else None."""
    a = np.asarray(raw, dtype=np.float64)
    if a.size == 0 or not np.all(np.isfinite(a)):
        return "empty"
    hi, lo = float(a.max()), float(a.min())
    if hi <= 0.0:
        return "empty"
    return "flat" if (hi - lo) / hi < FLAT_CONTRAST else None


def cam_warning(state: str | None, class_name: str, layer: str | None, method: str,
                layers: Sequence[str]) -> str | None:
    """One line for an empty or flat map, with what to try instead: the other CAM method and an earlier (larger)
    conv layer, e.g. ``no positive evidence for class 7 at conv2: try Grad-CAM++ or conv1``."""
    if state is None:
        return None
    tries = ["Grad-CAM++" if method == "gradcam" else "Grad-CAM"]
    if layer in layers and layers.index(layer) > 0:
        tries.append(layers[layers.index(layer) - 1])
    at = f" at {layer}" if layer else ""
    what = (f"no positive evidence for class {class_name}{at}" if state == "empty" else
            f"the {METHOD_NAMES.get(method, method)} map for class {class_name}{at} is nearly flat (its colours "
            "would only show noise)")
    return f"{what}: try {' or '.join(tries)}"


def _grey(pixels: Any) -> np.ndarray:
    a = np.asarray(pixels, dtype=np.float64)
    if a.ndim == 3:
        a = a.mean(axis=2)
    return a / 255.0 if a.max(initial=0.0) > 1.0 else a


def opposite_polarity(pixels: Any, train_mean: Sequence[float]) -> bool:
    """Whether an image (H, W[, C], uint8 or [0, 1]) has the opposite polarity to the training data: its border
    (the background) is light where the training images' mean says dark, or the reverse. Only decided for
    training sets with a plain background (mean below 0.35 or above 0.65: MNIST 0.13, Fashion-MNIST 0.29);
    natural images (CIFAR-10, 0.47) have none, and the answer is False."""
    mean = float(np.mean(train_mean))
    if abs(mean - 0.5) < 0.5 - PLAIN_BACKGROUND:
        return False
    g = _grey(pixels)
    if g.ndim != 2 or min(g.shape) < 3:
        return False
    border = np.concatenate([g[0], g[-1], g[1:-1, 0], g[1:-1, -1]])
    return bool((float(np.median(border)) < 0.5) != (mean < 0.5))


def invert(pixels: Any) -> np.ndarray:
    """The negative of a uint8 image (or of one in [0, 1])."""
    a = np.asarray(pixels)
    return (255 - a).astype(np.uint8) if a.dtype == np.uint8 else (1.0 - a)


def stretch(image: Any) -> tuple[np.ndarray, float, float]:
    """``image`` scaled to fill [0, 1] from its own minimum and maximum; returns (image, min, max). A constant
    image stays as it is."""
    a = np.asarray(image, dtype=np.float32)
    if not a.size:
        return a, 0.0, 0.0
    lo, hi = float(a.min()), float(a.max())
    if hi > lo:
        a = (a - lo) / (hi - lo)
    return a, lo, hi
