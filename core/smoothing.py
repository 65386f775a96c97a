"""Curve smoothing and downsampling for display. Pure Python/numpy, no torch; numpy is imported by the functions
that use it, so the EMA's incremental form (:func:`ema_step`, :func:`debias`) costs a light module nothing.

Smoothing runs on the full-resolution series; only its result is downsampled to the plot's width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def ema_step(acc: float, value: float, weight: float, count: int = 1) -> float:
    """One step of the EMA's accumulator (``acc = acc*w + (1-w)*value``), taking ``value`` ``count`` times.

    The incremental form of :func:`ema_debiased`, for series that grow a point at a time: start at ``acc = 0``,
    step over the finite values only, and read :func:`debias` ``(acc, n, weight)`` after ``n`` of them.
    """
    wc = weight**count
    return wc * acc + (1.0 - wc) * value


def debias(acc: Any, n: Any, weight: float) -> Any:
    """The debiased EMA, ``acc / (1 - w**n)``, after ``n`` finite values (floats or arrays), so that early points
    are not pulled towards the accumulator's start at 0 (``n`` = 0 has no value: a division by zero)."""
    return acc / (1.0 - weight**n)


def ema_debiased(values: Sequence[float], weight: float) -> np.ndarray:
    """TensorBoard's causal exponential moving average with bias correction, over a whole series.

    The numbers of :func:`ema_step` and :func:`debias` point by point, vectorised. ``weight`` in [0, 1): 0 returns
    the input unchanged. Non-finite values are carried over (not averaged in, not counted).
    """
    import numpy as np

    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    v = np.asarray(values, dtype=np.float64)
    out = v.copy()
    finite = np.isfinite(v)
    out[finite] = _ema_blocks(v[finite], weight)
    return out


def _ema_blocks(x: np.ndarray, w: float) -> np.ndarray:
    """The debiased EMA of finite ``x`` in blocks: within one, the recurrence is a scaled cumulative sum (a Python
    loop costs ~5 ms per 4000 points, most of a redraw with 8 jobs overlaid). Blocks are as long as ``w ** -k``
    stays below ~1e250 (no overflow)."""
    import numpy as np

    if w <= 0:
        return x.copy()
    block = max(16, min(4096, int(250 / max(1e-12, -math.log10(w)))))
    out = np.empty_like(x)
    carry = 0.0
    for start in range(0, len(x), block):
        chunk = x[start:start + block]
        k = np.arange(len(chunk))
        scaled = np.cumsum(chunk * w ** -k.astype(np.float64))
        acc = (w ** (k + 1)) * carry + (1.0 - w) * (w**k) * scaled  # ema_step over the block, all at once
        out[start:start + len(chunk)] = debias(acc, start + k + 1, w)
        carry = float(acc[-1])
    return out


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Causal trailing mean over the last ``window`` points (shorter at the start)."""
    import numpy as np

    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    v = np.asarray(values, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def smooth(values: Sequence[float], method: str = "ema", amount: float = 0.6) -> np.ndarray:
    """``method`` 'ema' (``amount`` = weight in [0,1)), 'mean' (``amount`` = window), or 'none'."""
    import numpy as np

    if method == "none" or len(values) == 0:
        return np.asarray(values, dtype=np.float64)
    if method == "ema":
        return ema_debiased(values, amount)
    if method == "mean":
        return moving_average(values, max(1, int(amount)))
    raise ValueError(f"unknown smoothing {method!r} (ema, mean, none)")


def downsample(xs: Sequence[float], ys: Sequence[float], n: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` points: bucket means over equal index ranges, always keeping the last point exact."""
    import numpy as np

    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if n <= 0 or len(x) <= n:
        return x, y
    edges = np.linspace(0, len(x), n + 1).astype(np.int64)
    counts = np.diff(edges)
    xo = np.add.reduceat(x, edges[:-1]) / counts
    yo = np.add.reduceat(y, edges[:-1]) / counts
    xo[-1], yo[-1] = x[-1], y[-1]
    return xo, yo
