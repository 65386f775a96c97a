"""Class activation maps (torch): a base class owns the hooks and the pipeline, each method overrides one step.

In the style of jacobgil/pytorch-grad-cam: ``BaseCAM`` hooks a target layer (addressed by name), runs the model,
back-propagates one target score per sample, and turns activations A (B, K, h, w) and gradients dY/dA into a
map ``relu(sum_k w_k A_k)`` upsampled bilinearly to the input and min-max scaled per sample to [0, 1].
Subclasses only say how to weight the channels (``get_cam_weights``). Use as a context manager so the hooks are
released::

    with GradCAM(model, layer="conv2") as cam:
        maps = cam(x, targets=[3, None])  # (B, H, W) numpy in [0, 1]; None = the predicted class
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from core.errors import NcanvasError

# ---------------------------------------------------------------------------------------------- layers & targets

def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The sub-module called ``name`` (as in ``named_modules``), or one clear error listing the choices."""
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        raise NcanvasError(f"no layer {name!r} in this model; conv layers: {', '.join(convs)}")
    return modules[name]


def default_target_layer(model: nn.Module, input_shape: Sequence[int], min_side: int = 2) -> str:
    """The last ``Conv2d`` whose output map is at least ``min_side`` on each side (a 1x1 map cannot localise
    anything; the art analyzer asks for 4); else the last one wider than 1x1; else the last conv."""
    sizes: dict[str, tuple[int, int]] = {}
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise NcanvasError("this model has no convolutional layer")
    hooks = [m.register_forward_hook(lambda _m, _i, o, n=n: sizes.__setitem__(n, (o.shape[-2], o.shape[-1])))
             for n, m in convs]
    was_training = model.training
    model.eval()  # batch-norm in training mode refuses a single 1x1 sample
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape[-3:], device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    big = [n for n, _ in convs if min(sizes.get(n, (0, 0))) >= min_side]
    wide = [n for n, _ in convs if sizes.get(n, (0, 0))[0] * sizes.get(n, (0, 0))[1] > 1]
    return (big or wide or [convs[-1][0]])[-1]


@dataclass(frozen=True)
class ClassTarget:
    """The logit of one class (a target callable: logits row (K,) -> scalar)."""

    index: int

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[self.index]


Target = int | None | Callable[[torch.Tensor], torch.Tensor]


def resolve_targets(logits: torch.Tensor, targets: Target | Sequence[Target]) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """One callable per sample: an int is a class index, None the predicted class; one value applies to all."""
    b, k = logits.shape
    items: list[Any] = list(targets) if isinstance(targets, (list, tuple)) else [targets] * b
    if len(items) != b:
        raise NcanvasError(f"{len(items)} targets for a batch of {b}")
    out = []
    for i, t in enumerate(items):
        if t is None:
            t = int(logits[i].argmax())
        if isinstance(t, (int, np.integer)):
            if not 0 <= int(t) < k:
                raise NcanvasError(f"class {int(t)} is out of range: the model has classes 0..{k - 1}")
            t = ClassTarget(int(t))
        out.append(t)
    return out


def minmax_per_sample(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> each sample scaled to [0, 1]; a constant sample becomes zeros."""
    flat = x.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    span = hi - lo
    # a span at float rounding level is a constant map (e.g. a 1x1 CAM upsampled): zeros, not stretched noise
    span = torch.where(span > 1e-6 * torch.maximum(hi.abs(), lo.abs()), span, torch.zeros_like(span))
    out = torch.where(span > 0, (flat - lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(flat))
    return out.view_as(x)


# ---------------------------------------------------------------------------------------------- base class

class BaseCAM:
    """Hooks ``layer`` of ``model``; ``__call__`` returns (B, H, W) maps in [0, 1] at input resolution."""

    def __init__(self, model: nn.Module, layer: str | None = None, input_shape: Sequence[int] | None = None) -> None:
        self.model = model.eval()
        if layer is None:
            if input_shape is None:
                raise NcanvasError("a target layer or the input shape is needed to pick the default layer")
            layer = default_target_layer(model, input_shape)
        self.layer = layer
        self._acts: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None  # of the last call, for callers that show the prediction
        self._handles = [resolve_layer(model, layer).register_forward_hook(self._on_forward)]

    def _on_forward(self, _m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        self._acts = out

    def get_cam_weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """Channel weights (B, K) from activations and gradients (B, K, h, w). Subclasses override this."""
        raise NotImplementedError

    def raw_cam(self, x: torch.Tensor, targets: Target | Sequence[Target] = None) -> torch.Tensor:
        """``relu(sum_k w_k A_k)`` at the layer's resolution: (B, h, w), not normalised."""
        x = x.detach().clone().requires_grad_(True)  # the layer output needs a graph even if weights are frozen
        self._acts = None
        with torch.enable_grad():
            logits = self.model(x)  # (B, classes)
            acts = self._acts
            if acts is None or not isinstance(acts, torch.Tensor):
                raise NcanvasError(f"layer {self.layer!r} did not take part in the forward pass")
            score = torch.stack([t(logits[i]) for i, t in enumerate(resolve_targets(logits, targets))]).sum()
            # Only dScore/dA: no weight or input gradients are computed (about 4x faster than .backward()).
            (grads,) = torch.autograd.grad(score, acts)
        self.logits = logits.detach()
        acts, grads = acts.detach(), grads.detach()
        if acts.dim() != 4:
            raise NcanvasError(f"layer {self.layer!r} has output shape {tuple(acts.shape)}; pick a conv layer")
        weights = self.get_cam_weights(acts, grads)  # (B, K)
        return F.relu((weights[:, :, None, None] * acts).sum(1))  # (B, h, w)

    def __call__(self, x: torch.Tensor, targets: Target | Sequence[Target] = None) -> np.ndarray:
        raw = self.raw_cam(x, targets)
        self.raw = raw.cpu().numpy()  # (B, h, w) before normalisation: whether a map is empty or flat shows here
        cam = raw[:, None]  # (B, 1, h, w)
        cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear")  # (B, 1, H, W)
        return minmax_per_sample(cam[:, 0]).cpu().numpy()

    def release(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> BaseCAM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# ---------------------------------------------------------------------------------------------- methods

class GradCAM(BaseCAM):
    """Grad-CAM (Selvaraju et al., 2017): a channel's weight is its spatially averaged gradient."""

    def get_cam_weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads.mean(dim=(2, 3))  # (B, K)


class GradCAMPlusPlus(BaseCAM):
    """Grad-CAM++ (Chattopadhyay et al., 2018): positive gradients weighted by second/third-order terms,
    which spreads credit over several instances of a class instead of the single strongest one. The weights are
    the paper's eq. 19 (an exponential score, so the higher derivatives are powers of the gradient) exactly as
    pytorch-grad-cam computes them, epsilon included, so the maps agree with it."""

    def get_cam_weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        g2 = grads.pow(2)
        g3 = g2 * grads
        sum_acts = acts.sum(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
        alpha = g2 / (2 * g2 + sum_acts * g3 + 1e-6)  # (B, K, h, w)
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        return (F.relu(grads) * alpha).sum(dim=(2, 3))  # (B, K)


CAM_METHODS: dict[str, type[BaseCAM]] = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus}
