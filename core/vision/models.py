"""Small CNNs for MNIST / Fashion-MNIST / CIFAR-10 (torch; import lazily).

Read leaf-first: config, then the three models, then the registry. Every activation is an ``nn.ReLU`` module
(never in-place, never functional) so forward hooks (feature maps, Grad-CAM) and guided backprop's backward
hooks see each one. Layers carry readable names (``conv1``, ``relu1``, ``features.conv4`` ...) because the CLI
and dashboard address them by name.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from core.errors import NcanvasError


@dataclass
class ModelConfig:
    in_channels: int = 1  # 1 for MNIST-like data, 3 for CIFAR
    num_classes: int = 10
    image_size: int = 28  # square inputs; the flattened FC sizes are derived from it


def _pooled(size: int, convs: list[tuple[int, int]]) -> int:
    """Spatial size after (kernel, pad) convs each followed by a 2x2 max-pool."""
    for k, p in convs:
        size = (size + 2 * p - k + 1) // 2
    return size


# ---------------------------------------------------------------------------------------------- simplecnn

class SimpleCNN(nn.Module):
    """Two 8-channel 3x3 convs and one linear layer: ~4.6k parameters, ~98-99 % on MNIST."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cfg.in_channels, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        side = _pooled(cfg.image_size, [(3, 1), (3, 1)])
        self.fc = nn.Linear(8 * side * side, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))  # (B, 8, H/2, W/2)
        x = self.pool2(self.relu2(self.conv2(x)))  # (B, 8, H/4, W/4)
        return self.fc(x.flatten(1))  # (B, classes)


# ---------------------------------------------------------------------------------------------- lenet-demo

class LeNetDemo(nn.Module):
    """The browser demo's LeNet: unpadded 3x3 convs (4 and 8 channels), FC 200 -> 128 -> classes on 28x28."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cfg.in_channels, 4, 3)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 8, 3)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        side = _pooled(cfg.image_size, [(3, 0), (3, 0)])  # 28 -> 26 -> 13 -> 11 -> 5
        self.fc1 = nn.Linear(8 * side * side, 128)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(128, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))  # (B, 4, 13, 13) on 28x28
        x = self.pool2(self.relu2(self.conv2(x)))  # (B, 8, 5, 5)
        x = self.relu3(self.fc1(x.flatten(1)))  # (B, 128)
        return self.fc2(x)  # (B, classes)


# ---------------------------------------------------------------------------------------------- simplenet

# SimpleNet (Hasanpour et al., 2016), the 5M-parameter CIFAR configuration: output channels of 3x3 convs,
# "P" = 2x2 max-pool, (c, 1) = a 1x1 conv. The reference code has a fifth pool after the 512 layer; we keep
# four so the same network also runs on 28x28 (28 -> 14 -> 7 -> 3 -> 1); the global max-pool absorbs the rest.
SIMPLENET_LAYERS: list[int | str | tuple[int, int]] = [
    64, 128, 128, 128, "P", 128, 128, 256, "P", 256, 256, "P", 512, (2048, 1), (256, 1), "P", 256,
]


class SimpleNet(nn.Module):
    """SimpleNet-5M: 13 conv+BN+ReLU blocks, global max-pool, one linear layer (~5.5M params on RGB)."""

    def __init__(self, cfg: ModelConfig, bn_momentum: float = 0.05, dropout: float = 0.1) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c_in, n_conv, n_pool = cfg.in_channels, 0, 0
        for spec in SIMPLENET_LAYERS:
            if spec == "P":
                n_pool += 1
                layers[f"pool{n_pool}"] = nn.MaxPool2d(2)
                layers[f"drop{n_pool}"] = nn.Dropout2d(dropout)
                continue
            c_out, k = spec if isinstance(spec, tuple) else (int(spec), 3)
            n_conv += 1
            layers[f"conv{n_conv}"] = nn.Conv2d(c_in, c_out, k, padding=k // 2)
            layers[f"bn{n_conv}"] = nn.BatchNorm2d(c_out, eps=1e-5, momentum=bn_momentum)
            layers[f"relu{n_conv}"] = nn.ReLU()
            c_in = c_out
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveMaxPool2d(1)  # global max pool, as in the paper
        self.drop = nn.Dropout(dropout)
        self.classifier = nn.Linear(c_in, cfg.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # Xavier with the ReLU gain, as the reference implementation
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("relu"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 256, h, w): h = 2 on 32x32, 1 on 28x28
        x = self.pool(x).flatten(1)  # (B, 256)
        return self.classifier(self.drop(x))  # (B, classes)


# ---------------------------------------------------------------------------------------------- registry

MODELS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "simplecnn": SimpleCNN,
    "lenet-demo": LeNetDemo,
    "simplenet": SimpleNet,
}
MODEL_NAMES = tuple(MODELS)


def build_model(name: str, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Instantiate a registered model.

    Args:
        name: one of :data:`MODEL_NAMES`.
        in_channels: image channels (1 grey, 3 RGB).
        num_classes: size of the output layer.
        image_size: side of the square input in pixels.

    Raises:
        NcanvasError: unknown name, or an input too small for the architecture.
    """
    if name not in MODELS:
        raise NcanvasError(f"unknown model {name!r}; models: {', '.join(MODEL_NAMES)}")
    if image_size < 8:
        raise NcanvasError(f"image size {image_size} is too small for {name}")
    return MODELS[name](ModelConfig(in_channels, num_classes, image_size))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv_layer_names(model: nn.Module) -> list[str]:
    """Names of every ``nn.Conv2d`` in forward order."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def describe(model: nn.Module, image_size: int, in_channels: int) -> list[dict[str, object]]:
    """One dict per leaf layer: name, type, parameter count, output shape (for exports and the dashboard)."""
    shapes: dict[str, list[int]] = {}
    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    hooks = [m.register_forward_hook(lambda _m, _i, o, n=n: shapes.__setitem__(n, list(o.shape[1:])))
             for n, m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, image_size, image_size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return [{"name": n, "type": type(m).__name__, "params": sum(p.numel() for p in m.parameters()),
             "out_shape": shapes.get(n), **_layer_args(m)} for n, m in leaves]


def _layer_args(m: nn.Module) -> dict[str, object]:
    if isinstance(m, nn.Conv2d):
        return {"in": m.in_channels, "out": m.out_channels, "kernel": list(m.kernel_size), "padding": list(m.padding)}
    if isinstance(m, nn.Linear):
        return {"in": m.in_features, "out": m.out_features}
    if isinstance(m, nn.MaxPool2d):
        return {"kernel": m.kernel_size}
    return {}

