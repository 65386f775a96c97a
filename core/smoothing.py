"""Curve smoothing and downsampling for display. Pure Python/numpy, no torch.

Smoothing runs on the full-resolution series; only its result is downsampled to the plot's width.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ema_debiased(values: Sequence[float], weight: float) -> np.ndarray:
    """TensorBoard's causal exponential moving average with bias correction.

    ``last = last*w + (1-w)*v``; the output is ``last / (1 - w**n)``, so early points are not pulled to 0.
    ``weight`` in [0, 1): 0 returns the input unchanged. Non-finite values are carried over (not averaged in).
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    v = np.asarray(values, dtype=np.float64)
    out = np.empty_like(v)
    last, n = 0.0, 0
    for i, x in enumerate(v):
        if not np.isfinite(x):
            out[i] = x
            continue
        last = last * weight + (1.0 - weight) * x
        n += 1
        out[i] = last / (1.0 - weight**n)
    return out


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Causal trailing mean over the last ``window`` points (shorter at the start)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    v = np.asarray(values, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def smooth(values: Sequence[float], method: str = "ema", amount: float = 0.6) -> np.ndarray:
    """``method`` 'ema' (``amount`` = weight in [0,1)), 'mean' (``amount`` = window), or 'none'."""
    if method == "none" or len(values) == 0:
        return np.asarray(values, dtype=np.float64)
    if method == "ema":
        return ema_debiased(values, amount)
    if method == "mean":
        return moving_average(values, max(1, int(amount)))
    raise ValueError(f"unknown smoothing {method!r} (ema, mean, none)")


def downsample(xs: Sequence[float], ys: Sequence[float], n: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` points: bucket means over equal index ranges, always keeping the last point exact."""
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
