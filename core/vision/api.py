"""The vision API the CLI and the dashboard panes call (torch; import lazily, e.g. inside a thread worker).

    clf = load_classifier("checkpoints/cnn-0001/best_model.pt")
    classify(clf, "digit.png")                       # [("7", 0.98), ("1", 0.01), ...]
    heat = explain_map(clf, "digit.png", "gradcam")  # (H, W) float32 in [0, 1] at the model's input size
    overlay(clf.display("digit.png"), heat)          # core.render: (H, W, 3) uint8 to draw

Images may be a path, a ``PIL.Image``, or a numpy array (H, W) / (H, W, C) uint8; any size or mode is converted
to what the model needs (grey or RGB, resized to its square input). Every user mistake raises one
:class:`NcanvasError` line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from core.errors import CheckpointError, NcanvasError
from core.imageio import open_image, stretch_to_8bit, to_mode

METHODS = ("gradcam", "gradcam++", "guided", "guided-gradcam")
PREDICTED = "predicted"  # --class value for "explain the predicted class"
ImageInput = Any  # str | os.PathLike | PIL.Image.Image | np.ndarray


@dataclass
class Classifier:
    """A trained CNN with everything needed to feed it and name its outputs."""

    model: nn.Module
    arch: str
    dataset: str
    class_names: list[str]
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    path: Path
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    samples: np.ndarray | None = None  # (N, H, W, C) uint8 test images stored in the checkpoint
    sample_labels: list[int] = field(default_factory=list)
    epoch: int = 0

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)

    def pixels(self, image: ImageInput) -> np.ndarray:
        """The image as the model sees it before normalisation: (H, W, C) uint8 at the model's size."""
        return to_model_pixels(image, self.in_channels, self.image_size)

    def preprocess(self, image: ImageInput) -> torch.Tensor:
        """(1, C, H, W) normalised float tensor on the model's device."""
        x = torch.from_numpy(self.pixels(image)).permute(2, 0, 1)[None].float().div(255.0)
        m = torch.tensor(self.mean).view(1, -1, 1, 1)
        s = torch.tensor(self.std).view(1, -1, 1, 1)
        return ((x - m) / s).to(self.device)

    def display(self, image: ImageInput) -> np.ndarray:
        """(H, W, 3) float in [0, 1]: the model-sized input, for drawing overlays."""
        p = self.pixels(image).astype(np.float32) / 255.0
        return np.repeat(p, 3, axis=2) if p.shape[2] == 1 else p

    def class_index(self, value: int | str | None) -> int | None:
        """A class given by index or by name (case-insensitive, surrounding blanks ignored); None, "" and
        "predicted" mean the predicted class (returned as None), as ``--class`` documents."""
        if isinstance(value, str):
            value = value.strip()
            if value.lower() in ("", PREDICTED):
                return None
        if value is None:
            return None
        if isinstance(value, str) and not value.lstrip("-").isdigit():
            names = [n.lower() for n in self.class_names]
            if value.lower() not in names:
                raise NcanvasError(f"no class {value!r}; classes: {', '.join(self.class_names)} (or {PREDICTED})")
            return names.index(value.lower())
        idx = int(value)
        if not 0 <= idx < len(self.class_names):
            raise NcanvasError(f"class {idx} is out of range: the model has classes 0..{len(self.class_names) - 1}")
        return idx


# ---------------------------------------------------------------------------------------------- loading

def load_classifier(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Classifier:
    """Rebuild a ``cnn`` checkpoint's model (architecture, classes, normalisation) from the file alone."""
    from core.checkpoint import check_finite_weights, load_checkpoint, load_model_state
    from core.vision.models import build_model

    path = Path(path)
    ck = load_checkpoint(path, kind="cnn", map_location=device)
    meta = (ck.get("extra") or {}).get("vision")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} has no vision metadata (not written by the cnn job)")
    check_finite_weights(ck, path)
    try:  # an edited or foreign file: one line about the metadata, not an IndexError in the first prediction
        channels, n_classes, size = int(meta["in_channels"]), int(meta["num_classes"]), int(meta["image_size"])
        names, mean, std = [str(n) for n in meta["class_names"]], tuple(meta["mean"]), tuple(meta["std"])
        samples = meta.get("samples")
        sample_labels = [int(v) for v in meta.get("sample_labels", [])]
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} has damaged vision metadata ({type(e).__name__}: {e})") from None
    if len(names) != n_classes:
        raise CheckpointError(f"{path} names {len(names)} classes for a model with {n_classes} outputs")
    if len(mean) != channels or len(std) != channels:
        raise CheckpointError(f"{path}: normalisation for {len(mean)} channels, but the model takes {channels}")
    model = build_model(ck["arch"], channels, n_classes, size)
    load_model_state(model, ck, path)
    model.to(device).eval()
    return Classifier(
        model=model, arch=ck["arch"], dataset=str(meta.get("dataset")), class_names=names,
        in_channels=channels, image_size=size, mean=mean, std=std, path=Path(path), device=torch.device(device),
        samples=None if samples is None else samples.permute(0, 2, 3, 1).cpu().numpy(),
        sample_labels=sample_labels, epoch=int(ck.get("epoch", 0)))


def load_image(path: str | os.PathLike[str]) -> Any:
    """Open and fully decode an image file (PIL): :func:`core.imageio.open_image`, the one image-reading path."""
    return open_image(path)


def to_model_pixels(image: ImageInput, channels: int, size: int) -> np.ndarray:
    """Any image -> (size, size, channels) uint8: grey or RGB, resized with Lanczos."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    if isinstance(image, np.ndarray):
        image = _array_to_pil(image)
    if not isinstance(image, Image.Image):
        raise NcanvasError(f"expected an image path, PIL image or array; got {type(image).__name__}")
    image = to_mode(image, "L" if channels == 1 else "RGB")  # 16-bit/float stretched, alpha onto black, EXIF
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    a = np.array(image, dtype=np.uint8)  # a writable copy, so torch.from_numpy can share it
    return a[..., None] if a.ndim == 2 else a


def _array_to_pil(a: np.ndarray) -> Any:
    from PIL import Image

    a = np.asarray(a)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    a = stretch_to_8bit(a)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise NcanvasError(f"cannot read an image from an array of shape {a.shape}")
    return Image.fromarray(a)


# ---------------------------------------------------------------------------------------------- inference

@torch.no_grad()
def predict_proba(clf: Classifier, image: ImageInput | torch.Tensor) -> np.ndarray:
    """Softmax probabilities (classes,); ``image`` may also be an already preprocessed (1, C, H, W) tensor."""
    x = image if isinstance(image, torch.Tensor) else clf.preprocess(image)
    return torch.softmax(clf.model(x), dim=1)[0].cpu().numpy()


def classify(clf: Classifier, image: ImageInput, top_k: int = 5) -> list[tuple[str, float]]:
    """The ``top_k`` most likely classes as (name, probability), best first."""
    probs = predict_proba(clf, image)
    order = np.argsort(-probs)[:max(1, top_k)]
    return [(clf.class_names[i], float(probs[i])) for i in order]


def layer_names(clf: Classifier, conv_only: bool = True) -> list[str]:
    """Names usable as ``layer``: conv layers (default), or every leaf module."""
    if conv_only:
        return [n for n, m in clf.model.named_modules() if isinstance(m, nn.Conv2d)]
    return [n for n, m in clf.model.named_modules() if n and not list(m.children())]


def default_layer(clf: Classifier) -> str:
    """The Grad-CAM default: the last conv layer with a spatial map wider than 1x1."""
    from core.vision.interpret.cam import default_target_layer

    return default_target_layer(clf.model, clf.input_shape)


@dataclass
class Explanation:
    heat: np.ndarray  # (H, W) float32 in [0, 1] at the model's input size
    method: str
    layer: str | None  # None for plain guided backprop
    target: int  # the class explained
    predicted: int
    probs: np.ndarray  # (classes,)
    gradient: np.ndarray | None = None  # (C, H, W) guided gradients, for the guided methods
    state: str | None = None  # "empty" or "flat" when the CAM shows no evidence (core.vision.checks.cam_state)


def explain(clf: Classifier, image: ImageInput, method: str = "gradcam", target: int | str | None = None,
            layer: str | None = None) -> Explanation:
    """Explain one prediction with Grad-CAM, Grad-CAM++, guided backprop or guided Grad-CAM."""
    from core.vision.checks import cam_state
    from core.vision.interpret.cam import CAM_METHODS, resolve_layer
    from core.vision.interpret.guided import GuidedBackprop, guided_gradcam, saliency

    if method not in METHODS:
        raise NcanvasError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")
    x = clf.preprocess(image)
    cls = clf.class_index(target)
    probs = predict_proba(clf, x)
    predicted = int(probs.argmax())
    target_idx = predicted if cls is None else cls
    if layer is not None:
        resolve_layer(clf.model, layer)
    grad, state = None, None
    if method in CAM_METHODS:
        layer = layer or default_layer(clf)
        with CAM_METHODS[method](clf.model, layer) as cam:
            heat = cam(x, [target_idx])[0]
            state = cam_state(cam.raw[0])
    elif method == "guided":
        layer = None
        with GuidedBackprop(clf.model) as gb:
            grad = gb(x, [target_idx])[0].cpu().numpy()
        heat = saliency(grad)
    else:
        layer = layer or default_layer(clf)
        grad = guided_gradcam(clf.model, x, [target_idx], layer)[0].cpu().numpy()
        heat = saliency(grad)
        state = None if np.any(grad) else "empty"  # masked by an all-zero Grad-CAM map
    return Explanation(heat.astype(np.float32), method, layer, target_idx, predicted, probs, grad, state)


def explanation_warning(clf: Classifier, ex: Explanation) -> str | None:
    """One line when the map of :func:`explain` is empty or nearly flat, naming what to try instead."""
    from core.vision.checks import cam_warning

    name = clf.class_names[ex.target] if 0 <= ex.target < len(clf.class_names) else str(ex.target)
    return cam_warning(ex.state, name, ex.layer, ex.method, layer_names(clf))


def explain_map(clf: Classifier, image: ImageInput, method: str = "gradcam", target: int | str | None = None,
                layer: str | None = None) -> np.ndarray:
    """Just the (H, W) map in [0, 1] of :func:`explain`."""
    return explain(clf, image, method, target, layer).heat


# ---------------------------------------------------------------------------------------------- visualisations

def filters_image(clf: Classifier, layer: str | None = None) -> np.ndarray:
    """A grid image of a conv layer's filters (default: the first conv)."""
    from core.vision.interpret.visualize import filter_grid, filter_weights

    return filter_grid(filter_weights(clf.model, layer or layer_names(clf)[0]))


def features_image(clf: Classifier, image: ImageInput, layer: str | None = None) -> np.ndarray:
    """A grid of one layer's feature maps for an image (default: the first conv)."""
    from core.vision.interpret.visualize import feature_grid, feature_maps

    name = layer or layer_names(clf)[0]
    return feature_grid(feature_maps(clf.model, clf.preprocess(image), [name])[name])


def maxact_image(clf: Classifier, layer: str | None = None, channel: int = 0, steps: int = 128,
                 seed: int = 0) -> np.ndarray:
    """(H, W, C) in [0, 1]: the input that most excites ``channel`` of ``layer`` (default: the last conv)."""
    from core.vision.interpret.visualize import AscentConfig, activation_maximization

    return activation_maximization(clf.model, layer or layer_names(clf)[-1], channel, clf.input_shape,
                                   clf.mean, clf.std, AscentConfig(steps=steps, seed=seed))


def class_model_image(clf: Classifier, target: int | str, steps: int = 128, seed: int = 0) -> np.ndarray:
    """(H, W, C) in [0, 1]: an input maximising the logit of ``target``."""
    from core.vision.interpret.visualize import AscentConfig, class_model

    cls = clf.class_index(target)
    if cls is None:
        raise NcanvasError("class-model needs a class (index or name)")
    return class_model(clf.model, cls, clf.input_shape, clf.mean, clf.std, AscentConfig(steps=steps, seed=seed))
