"""Guided backpropagation and guided Grad-CAM (torch).

Guided backprop (Springenberg et al., 2015) back-propagates a class score to the input but lets only positive
gradients through each ReLU (on top of the ReLU's own positive-input mask). Implemented with backward hooks on
the ``nn.ReLU`` modules, like captum's ``GuidedBackprop``, so it agrees with it to float precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from core.errors import NcanvasError
from core.vision.interpret.cam import GradCAM, Target, resolve_targets


class GuidedBackprop:
    """Context manager; ``__call__`` returns input gradients (B, C, H, W) as a tensor."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()
        relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
        if not relus:
            raise NcanvasError("guided backprop needs nn.ReLU modules; this model has none")
        if any(m.inplace for m in relus):
            raise NcanvasError("guided backprop needs non-inplace nn.ReLU modules")
        self._handles = [m.register_full_backward_hook(self._clamp) for m in relus]
        self.logits: torch.Tensor | None = None

    @staticmethod
    def _clamp(_m: nn.Module, grad_input: tuple[torch.Tensor, ...], _go: Any) -> tuple[torch.Tensor, ...]:
        return tuple(g.clamp(min=0) if g is not None else g for g in grad_input)

    def __call__(self, x: torch.Tensor, targets: Target | Sequence[Target] = None) -> torch.Tensor:
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            logits = self.model(x)
            score = torch.stack([t(logits[i]) for i, t in enumerate(resolve_targets(logits, targets))]).sum()
            self.model.zero_grad(set_to_none=True)
            (grad,) = torch.autograd.grad(score, x)
        self.logits = logits.detach()
        return grad.detach()  # (B, C, H, W)

    def release(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> GuidedBackprop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def guided_gradcam(model: nn.Module, x: torch.Tensor, targets: Target | Sequence[Target] = None,
                   layer: str | None = None) -> torch.Tensor:
    """Guided backprop gradients masked by the (upsampled, [0, 1]) Grad-CAM map: (B, C, H, W)."""
    with GradCAM(model, layer, input_shape=tuple(x.shape[1:])) as cam:
        maps = torch.from_numpy(cam(x, targets)).to(x.device)  # (B, H, W)
        fixed = [int(i) for i in cam.logits.argmax(1)] if targets is None else targets  # type: ignore[union-attr]
    with GuidedBackprop(model) as gb:
        grads = gb(x, fixed)
    return grads * maps[:, None]


def deprocess_gradient(grad: np.ndarray) -> np.ndarray:
    """A gradient image (C, H, W) -> a viewable (H, W, C) in [0, 1]: zero-centred, 0.1 std around grey."""
    g = np.asarray(grad, dtype=np.float32)
    g = (g - g.mean()) / (g.std() + 1e-5) * 0.1 + 0.5
    return np.clip(g, 0.0, 1.0).transpose(1, 2, 0)


def saliency(grad: np.ndarray) -> np.ndarray:
    """A gradient image (C, H, W) -> (H, W) in [0, 1]: max |gradient| over channels, min-max scaled."""
    s = np.abs(np.asarray(grad, dtype=np.float32)).max(axis=0)
    span = s.max() - s.min()
    return (s - s.min()) / span if span > 0 else np.zeros_like(s)
