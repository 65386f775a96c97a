"""Looking at what a CNN learned (torch): filter weights, feature maps, activation maximisation, class models.

Outputs are numpy arrays ready for :mod:`core.render` (grids in [0, 1], images (H, W, C) in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from core.errors import NcanvasError
from core.render import tile_grid
from core.vision.interpret.cam import resolve_layer

# ---------------------------------------------------------------------------------------------- filters

def filter_weights(model: nn.Module, layer: str) -> np.ndarray:
    """A conv layer's weights (out, in, k, k) as numpy."""
    m = resolve_layer(model, layer)
    if not isinstance(m, nn.Conv2d):
        raise NcanvasError(f"layer {layer!r} is a {type(m).__name__}, not a Conv2d")
    return m.weight.detach().cpu().float().numpy()


def filter_grid(weights: np.ndarray, max_in: int = 16) -> np.ndarray:
    """Weights (out, in, k, k) -> one image: RGB tiles when in == 3, a square grid when in == 1, else a row
    per filter with one tile per input channel (at most ``max_in``). Zero is mid-grey; each filter is scaled by its largest |weight|."""
    out, cin = weights.shape[:2]
    scale = np.abs(weights).reshape(out, -1).max(1).clip(min=1e-12)[:, None, None, None]
    w = weights / scale * 0.5 + 0.5  # (out, in, k, k) in [0, 1]
    if cin == 3:
        return tile_grid(w.transpose(0, 2, 3, 1), pad=1, pad_value=0.0)
    if cin == 1:  # one tile per filter, in a square grid
        return tile_grid(w[:, 0], pad=1, pad_value=0.0)
    n_in = min(cin, max_in)
    tiles = [w[o, i] for o in range(out) for i in range(n_in)]
    return tile_grid(tiles, cols=n_in, pad=1, pad_value=0.0)


# ---------------------------------------------------------------------------------------------- feature maps

@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> dict[str, np.ndarray]:
    """Activations of ``layers`` for one image ``x`` (1, C, H, W): name -> (K, h, w) (or (K,) for linear layers)."""
    out: dict[str, np.ndarray] = {}
    hooks = [resolve_layer(model, n).register_forward_hook(
        lambda _m, _i, o, n=n: out.__setitem__(n, o[0].detach().cpu().float().numpy())) for n in layers]
    model.eval()
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return out


def feature_grid(maps: np.ndarray, max_maps: int = 64) -> np.ndarray:
    """(K, h, w) activations -> one grid image, each map min-max scaled on its own."""
    if maps.ndim != 3:
        raise NcanvasError(f"feature maps need a conv-shaped layer; this one gives shape {maps.shape}")
    tiles = []
    for m in maps[:max_maps]:
        span = m.max() - m.min()
        tiles.append((m - m.min()) / span if span > 0 else np.zeros_like(m))
    return tile_grid(tiles, pad=1, pad_value=1.0)


# ---------------------------------------------------------------------------------------------- gradient ascent

@dataclass
class AscentConfig:
    steps: int = 128
    lr: float = 0.1  # Adam step on the normalised image
    jitter: int = 2  # random roll in pixels each step: patterns must survive small shifts, so no pixel noise
    blur_every: int = 4  # Gaussian blur every few steps suppresses high-frequency adversarial texture
    blur_sigma: float = 0.5
    weight_decay: float = 1e-4  # L2 on the image keeps it bounded (Simonyan et al.)
    seed: int = 0


def _gauss_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(round(2 * sigma)))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def gradient_ascent(model: nn.Module, objective: Callable[[torch.Tensor], torch.Tensor],
                    shape: Sequence[int], mean: Sequence[float], std: Sequence[float],
                    cfg: AscentConfig | None = None) -> np.ndarray:
    """Maximise ``objective(x)`` over an input starting from noise; returns (H, W, C) in [0, 1]."""
    cfg = cfg or AscentConfig()
    model.eval()
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(cfg.seed)
    m = torch.tensor(mean, device=dev).view(1, -1, 1, 1)
    s = torch.tensor(std, device=dev).view(1, -1, 1, 1)
    lo, hi = (0 - m) / s, (1 - m) / s  # the normalised image of black and white
    x = ((torch.rand(1, *shape[-3:], generator=g).to(dev) * 0.2 + 0.4) - m) / s  # grey-ish noise
    x.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=cfg.lr)
    for i in range(cfg.steps):
        dy, dx = (torch.randint(-cfg.jitter, cfg.jitter + 1, (2,), generator=g).tolist() if cfg.jitter else (0, 0))
        shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        loss = -objective(shifted) + cfg.weight_decay * x.pow(2).sum()
        # Only d(loss)/dx: backward() would also fill .grad on every weight (22 MB for simplenet), and the
        # dashboard keeps its model loaded, so they would stay for as long as the pane lives.
        (x.grad,) = torch.autograd.grad(loss, x)
        opt.step()
        with torch.no_grad():
            if cfg.blur_every and (i + 1) % cfg.blur_every == 0:
                x.copy_(_gauss_blur(x, cfg.blur_sigma))
            x.copy_(torch.maximum(torch.minimum(x, hi), lo))
    img = (x.detach() * s + m)[0].clamp(0, 1)  # (C, H, W)
    return img.permute(1, 2, 0).cpu().numpy()


def activation_maximization(model: nn.Module, layer: str, channel: int, shape: Sequence[int],
                            mean: Sequence[float], std: Sequence[float], cfg: AscentConfig | None = None) -> np.ndarray:
    """The input pattern that most excites filter ``channel`` of ``layer`` (mean activation)."""
    module = resolve_layer(model, layer)
    store: dict[str, torch.Tensor] = {}
    handle = module.register_forward_hook(lambda _m, _i, o: store.__setitem__("a", o))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *shape[-3:], device=next(model.parameters()).device))
        n = store["a"].shape[1]
        if not 0 <= channel < n:
            raise NcanvasError(f"filter {channel} is out of range: layer {layer!r} has filters 0..{n - 1}")

        def objective(x: torch.Tensor) -> torch.Tensor:
            model(x)
            a = store["a"][0, channel]
            return a.mean()

        return gradient_ascent(model, objective, shape, mean, std, cfg)
    finally:
        handle.remove()


def class_model(model: nn.Module, cls: int, shape: Sequence[int], mean: Sequence[float], std: Sequence[float],
                cfg: AscentConfig | None = None) -> np.ndarray:
    """Class-model visualisation (Simonyan et al., 2014): the input maximising one class logit."""
    with torch.no_grad():
        k = model.eval()(torch.zeros(1, *shape[-3:], device=next(model.parameters()).device)).shape[1]
    if not 0 <= cls < k:
        raise NcanvasError(f"class {cls} is out of range: the model has classes 0..{k - 1}")
    return gradient_ascent(model, lambda x: model(x)[0, cls], shape, mean, std, cfg)
