"""The art classifier's inference API (torch; import lazily): load an ``artcnn`` checkpoint, predict the three
heads, and explain each head with Grad-CAM. Used by ``ncanvas analyze`` and the dashboard's Analyze pane.

    clf = load_art_classifier("checkpoints/artcnn-0001/best_model.pt")
    preds = predict(clf, "painting.jpg")            # {"artist": [("Claude Monet", 0.91), ...], ...}
    cams = head_cams(clf, "painting.jpg")           # {"artist": (H, W) in [0, 1], ...} for each top-1
    prompt = prompt_from_logits(preds_logits(...))  # core.explain: the LLM's prompt for the top-1 triple
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.art.labels import HEADS
from core.errors import CheckpointError, NcanvasError


@dataclass
class ArtClassifier:
    model: torch.nn.Module
    labels: dict[str, list[str]]
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    backbone: str
    path: Path

    def pixels(self, image: Any) -> np.ndarray:
        """(S, S, 3) uint8 as the model sees it: RGB, shorter side resized, centre-cropped."""
        from PIL import Image

        from core.art.data import fit_crop
        from core.vision.api import load_image

        if isinstance(image, (str, os.PathLike)):
            image = load_image(image)
        elif isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        return fit_crop(image, self.image_size)

    def preprocess(self, image: Any) -> torch.Tensor:
        x = torch.from_numpy(self.pixels(image)).permute(2, 0, 1)[None].float() / 255.0  # (1, 3, S, S)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std


def load_art_classifier(path: str | os.PathLike[str]) -> ArtClassifier:
    """Rebuild an ``artcnn`` checkpoint's model from the file alone (labels, size and normalisation inside)."""
    from core.art.model import ArtClassifier as Net
    from core.art.model import ArtConfig
    from core.checkpoint import check_finite_weights, load_checkpoint, load_model_state

    ck = load_checkpoint(path, kind="artcnn")
    check_finite_weights(ck, path)
    cfg = ck["config"]
    labels = cfg.get("labels")
    if not isinstance(labels, dict) or set(labels) != set(HEADS):
        raise CheckpointError(f"{path} lacks the label table of an artcnn checkpoint")
    net = Net(ArtConfig(cfg["backbone"], len(labels["artist"]), len(labels["style"]), len(labels["genre"])))
    load_model_state(net, ck, path)
    net.eval()
    return ArtClassifier(net, {h: list(v) for h, v in labels.items()}, int(cfg["image_size"]),
                         tuple(cfg["mean"]), tuple(cfg["std"]), cfg["backbone"], Path(path))


def logits(clf: ArtClassifier, image: Any) -> dict[str, torch.Tensor]:
    """Per-head logits (1-D tensors) for one image."""
    with torch.no_grad():
        out = clf.model(clf.preprocess(image))
    return {h: v[0] for h, v in out.items()}


def predict(clf: ArtClassifier, image: Any, top_k: int = 3) -> dict[str, list[tuple[str, float]]]:
    """Top-k (label, probability) per head."""
    out = {}
    for head, lg in logits(clf, image).items():
        probs = torch.softmax(lg.float(), -1)
        p, i = probs.topk(min(top_k, len(probs)))
        out[head] = [(clf.labels[head][int(k)], float(v)) for v, k in zip(p, i)]
    return out


def head_cams(clf: ArtClassifier, image: Any, method: str = "gradcam", layer: str | None = None,
              targets: dict[str, int | None] | None = None) -> dict[str, np.ndarray]:
    """A CAM per head, each for that head's top-1 class unless ``targets`` names another: (S, S) in [0, 1]."""
    from core.art.model import HeadView
    from core.vision.interpret.cam import CAM_METHODS, default_target_layer

    if method not in CAM_METHODS:
        raise NcanvasError(f"unknown CAM method {method!r}; choose from {', '.join(CAM_METHODS)}")
    x = clf.preprocess(image)
    # the last conv with a map of 4x4 or more (ResNet's layer4 is 2x2 at 64 px, 1x1 at 32 px: nothing to localise)
    layer = layer or default_target_layer(clf.model, x.shape[1:], min_side=4)
    out = {}
    for head in HEADS:
        view = HeadView(clf.model, head).eval()
        with CAM_METHODS[method](view, layer=f"model.{layer}") as cam:
            out[head] = cam(x, (targets or {}).get(head))[0]
    return out
