"""The multi-head art classifier: a torchvision backbone with artist, style and genre heads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from core.art.labels import HEADS

DOWNLOAD_TIMEOUT_S = 30.0  # per blocking socket operation while ImageNet weights download


@dataclass
class ArtConfig:
    backbone: str = "resnet18"  # any torchvision classification model with an fc or classifier head
    n_artist: int = 25
    n_style: int = 27
    n_genre: int = 19


def _strip_classifier(model: nn.Module) -> tuple[nn.Module, int]:
    """Replace the backbone's final Linear with Identity; return the model and its feature width."""
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        model.fc = nn.Identity()
        return model, fc.in_features
    head = getattr(model, "classifier", None) or getattr(model, "heads", None)
    if isinstance(head, nn.Sequential):
        for i in range(len(head) - 1, -1, -1):
            layer = head[i]
            if isinstance(layer, nn.Linear):
                head[i] = nn.Identity()
                return model, layer.in_features
    if isinstance(head, nn.Linear):
        width = head.in_features
        setattr(model, "classifier" if hasattr(model, "classifier") else "heads", nn.Identity())
        return model, width
    raise ValueError(f"don't know where the classifier of {type(model).__name__} is")


def build_backbone(name: str, pretrained: bool) -> tuple[nn.Module, str]:
    """A torchvision model by name; ImageNet weights where they can be loaded. Returns (model, note for the log).

    The model is always built with ``weights=None`` and the weights loaded here with ``weights_only=True``:
    torchvision's own ``ctor(weights=...)`` path unpickles the downloaded file with torch.hub's default
    ``weights_only=False``, which would run any code a tampered file carries.
    """
    import torchvision

    try:
        ctor = torchvision.models.get_model_builder(name)
    except ValueError:
        raise ValueError(f"unknown backbone {name!r}; e.g. resnet18, resnet50, mobilenet_v3_small, "
                         "efficientnet_b0, convnext_tiny") from None
    if not pretrained:
        return ctor(weights=None), "random init"
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        state = _imagenet_state(weights)
    except Exception as e:  # noqa: BLE001 - offline, no cache, bad file: say so and train from scratch
        return ctor(weights=None), f"could not load ImageNet weights ({_why(e)}); training from random init"
    model = ctor(weights=None, **_pretrained_kwargs(name, weights))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # weights for another variant of the architecture: start clean, not half-loaded
        return ctor(weights=None), f"ImageNet weights {weights} do not fit ({_why(e)}); training from random init"
    _drop_aux_heads(model)
    return model, f"ImageNet weights {weights}"


def _pretrained_kwargs(name: str, weights: Any) -> dict[str, Any]:
    """What torchvision's builders set when they are given ``weights`` (built here with ``weights=None``): the
    input size the ViT/MaxViT weights were trained at, and GoogLeNet/Inception's input transform and the
    auxiliary heads their files carry (dropped again after loading, as torchvision does)."""
    meta = weights.meta
    if name.startswith("vit_"):
        return {"image_size": meta["min_size"][0]}
    if name.startswith("maxvit_"):
        return {"input_size": meta["min_size"]}
    if name in ("googlenet", "inception_v3"):
        return {"transform_input": True, "aux_logits": True, "init_weights": False}
    return {}


def _drop_aux_heads(model: nn.Module) -> None:
    if getattr(model, "aux_logits", False):
        model.aux_logits = False  # type: ignore[assignment]  # torch types __setattr__ for tensors/modules only
        for aux in ("aux1", "aux2", "AuxLogits"):
            if hasattr(model, aux):
                setattr(model, aux, None)


def _imagenet_state(weights: Any) -> dict[str, Any]:
    """The state dict of a torchvision ``WeightsEnum`` member: from torch.hub's cache, else downloaded (unless
    ``NCANVAS_OFFLINE=1``), hash-checked, unpickled with ``weights_only=True``."""
    import os
    from pathlib import Path
    from urllib.parse import urlparse

    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)
    if os.environ.get("NCANVAS_OFFLINE") == "1" and not cached.is_file():
        raise FileNotFoundError(f"downloads disabled (NCANVAS_OFFLINE=1) and no cached copy at {cached}")
    import socket

    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # torch.hub's urlopen has none: a silent network must not hang
    try:
        return weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    finally:
        socket.setdefaulttimeout(before)


def _why(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:160]}" if text else type(e).__name__


class ArtClassifier(nn.Module):
    """Backbone features -> three linear heads; ``forward`` returns ``{'artist','style','genre'}`` logits."""

    def __init__(self, cfg: ArtConfig, pretrained: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        backbone, self.init_note = build_backbone(cfg.backbone, pretrained)
        self.backbone, width = _strip_classifier(backbone)
        sizes = {"artist": cfg.n_artist, "style": cfg.n_style, "genre": cfg.n_genre}
        self.heads = nn.ModuleDict({h: nn.Linear(width, sizes[h]) for h in HEADS})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.backbone(x)  # (B, width)
        return {h: head(feats) for h, head in self.heads.items()}


class HeadView(nn.Module):
    """One head of a multi-head model as a plain classifier (for Grad-CAM and friends)."""

    def __init__(self, model: nn.Module, head: str) -> None:
        super().__init__()
        self.model, self.head = model, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[self.head]


def last_conv_name(model: nn.Module) -> str:
    """The name of the last Conv2d (the default Grad-CAM layer)."""
    name = None
    for n, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            name = n
    if name is None:
        raise ValueError("model has no Conv2d layer")
    return name


def masked_loss(logits: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Sum over heads of cross-entropy, ignoring missing labels (-1); 0 for a batch with none."""
    total = logits[HEADS[0]].new_zeros(())
    for i, head in enumerate(HEADS):
        y = labels[:, i]
        if (y >= 0).any():
            total = total + nn.functional.cross_entropy(logits[head].float(), y, ignore_index=-1)
    return total
