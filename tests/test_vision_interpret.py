"""Grad-CAM / Grad-CAM++ / guided backprop against captum, hooks, targets, and the visualisations."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from core.errors import NcanvasError
from core.vision.interpret.cam import GradCAM, GradCAMPlusPlus, default_target_layer, minmax_per_sample
from core.vision.interpret.guided import GuidedBackprop, deprocess_gradient, guided_gradcam, saliency
from core.vision.interpret.visualize import (
    AscentConfig,
    activation_maximization,
    class_model,
    feature_grid,
    feature_maps,
    filter_grid,
    filter_weights,
)
from core.vision.models import build_model

CASES = [("simplecnn", 1, 28, "conv2"), ("simplecnn", 1, 28, "conv1"), ("lenet-demo", 1, 28, "conv2"),
         ("simplenet", 3, 32, "features.conv10")]


def _model(name: str, c: int, size: int) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(name, c, 10, size).eval()
    if name == "simplenet":  # non-trivial BN statistics, so eval mode is really exercised
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
    return model


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules())


@pytest.mark.parametrize("name,c,size,layer", CASES)
def test_gradcam_matches_captum(name: str, c: int, size: int, layer: str) -> None:
    from captum.attr import LayerAttribution, LayerGradCam

    model = _model(name, c, size)
    x = torch.randn(4, c, size, size, generator=torch.Generator().manual_seed(1))
    targets = [0, 3, 7, 9]
    ref = LayerGradCam(model, dict(model.named_modules())[layer]).attribute(x, target=targets, relu_attributions=True)
    ref = minmax_per_sample(LayerAttribution.interpolate(ref, (size, size), "bilinear")[:, 0]).detach().numpy()
    with GradCAM(model, layer) as cam:
        ours = cam(x, targets)
    assert ours.shape == (4, size, size) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert ours.min() >= 0 and ours.max() <= 1


@pytest.mark.parametrize("name,c,size", [("simplecnn", 1, 28), ("lenet-demo", 1, 28), ("simplenet", 3, 32)])
def test_guided_backprop_matches_captum(name: str, c: int, size: int) -> None:
    from captum.attr import GuidedBackprop as CaptumGB

    model = _model(name, c, size)
    x = torch.randn(3, c, size, size, generator=torch.Generator().manual_seed(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = CaptumGB(model).attribute(x, target=[1, 4, 8])
    with GuidedBackprop(model) as gb:
        ours = gb(x, [1, 4, 8])
    assert ours.shape == x.shape and float(ours.abs().max()) > 0
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)


def test_hooks_are_released_and_predicted_target_is_default() -> None:
    model = _model("simplecnn", 1, 28)
    x = torch.randn(2, 1, 28, 28)
    before = _hook_count(model)
    with GradCAM(model, "conv2") as cam:
        pred = cam(x)  # None = predicted class per sample
        assert _hook_count(model) > before
        explicit = cam(x, [int(i) for i in cam.logits.argmax(1)])
    np.testing.assert_array_equal(pred, explicit)
    with GuidedBackprop(model):
        assert _hook_count(model) > before
    assert _hook_count(model) == before


def test_batch_targets_are_per_sample() -> None:
    model = _model("simplecnn", 1, 28)
    x = torch.randn(1, 1, 28, 28).repeat(2, 1, 1, 1)
    with GradCAM(model, "conv1") as cam:
        both = cam(x, [2, 5])
        one = cam(x[:1], 5)
    np.testing.assert_allclose(both[1], one[0], atol=1e-6)


def _acts_and_grads(model: nn.Module, layer: str, x: torch.Tensor, targets: list[int]) -> tuple[np.ndarray, ...]:
    """The layer's activations and d(sum of target logits)/d(activations), by a plain hook: (B, K, h, w) each."""
    store: dict[str, torch.Tensor] = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda _m, _i, o: store.__setitem__("a", o))
    try:
        logits = model(x)
        (grads,) = torch.autograd.grad(logits[torch.arange(len(targets)), targets].sum(), store["a"])
    finally:
        handle.remove()
    return store["a"].detach().double().numpy(), grads.double().numpy()


def _gradcam_pp_reference(acts: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's GradCAMPlusPlus, written out in numpy: alpha = g^2 / (2 g^2 + sum(A) g^3 + eps)
    where g != 0, channel weight = sum over positions of alpha * relu(g), map = relu(sum_k w_k A_k)."""
    g2, g3 = grads**2, grads**3
    sum_a = acts.sum(axis=(2, 3))[:, :, None, None]
    alpha = np.where(grads != 0, g2 / (2 * g2 + sum_a * g3 + 1e-6), 0.0)
    weights = (np.maximum(grads, 0) * alpha).sum(axis=(2, 3))  # (B, K)
    return np.maximum((weights[:, :, None, None] * acts).sum(axis=1), 0)  # (B, h, w)


@pytest.mark.parametrize("name,c,size,layer", [("simplecnn", 1, 28, "conv2"), ("simplenet", 3, 32, "features.conv10")])
def test_gradcam_plus_plus_matches_the_published_formula(name: str, c: int, size: int, layer: str) -> None:
    model = _model(name, c, size)
    x = torch.randn(3, c, size, size, generator=torch.Generator().manual_seed(4))
    targets = [1, 6, 2]
    ref_raw = _gradcam_pp_reference(*_acts_and_grads(model, layer, x, targets))
    assert ref_raw.max() > 0
    with GradCAMPlusPlus(model, layer) as cam:
        raw = cam.raw_cam(x, targets).double().numpy()
        maps = cam(x, targets)
    # float32 against float64: the channel sum cancels, so allow 2e-4 of the peak (eps 1e-7 instead of 1e-6
    # already moves the map by ~20 % of it, a missing relu(g) by ~9 %)
    np.testing.assert_allclose(raw, ref_raw, rtol=1e-3, atol=2e-4 * ref_raw.max())
    up = torch.nn.functional.interpolate(torch.from_numpy(ref_raw)[:, None].float(), size=(size, size), mode="bilinear")
    np.testing.assert_allclose(maps, minmax_per_sample(up[:, 0]).numpy(), atol=1e-4)
    with GradCAM(model, layer) as plain:  # a different method: the maps must differ somewhere
        assert np.abs(plain(x, targets) - maps).max() > 1e-3


@pytest.mark.parametrize("targets", [[1, 2], None])
def test_guided_gradcam_is_guided_backprop_times_the_gradcam_map(targets: list[int] | None) -> None:
    from captum.attr import GuidedBackprop as CaptumGB

    model = _model("simplecnn", 1, 28)
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    with GradCAM(model, "conv2") as cam:
        heat = cam(x, targets)  # (B, H, W) in [0, 1]
        fixed = [int(i) for i in cam.logits.argmax(1)] if targets is None else targets
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guided = CaptumGB(model).attribute(x, target=fixed)  # an independent guided backprop
    gg = guided_gradcam(model, x, targets, "conv2")
    assert gg.shape == (2, 1, 28, 28) and float(gg.abs().max()) > 0
    torch.testing.assert_close(gg, guided * torch.from_numpy(heat)[:, None], atol=1e-6, rtol=1e-5)
    img = deprocess_gradient(gg[0].numpy())
    assert img.shape == (28, 28, 1) and 0 <= img.min() and img.max() <= 1
    s = saliency(gg[0].numpy())
    assert s.shape == (28, 28) and s.max() == pytest.approx(1.0)


def test_target_and_layer_errors() -> None:
    model = _model("simplecnn", 1, 28)
    with pytest.raises(NcanvasError, match="no layer 'conv9'.*conv1, conv2"):
        GradCAM(model, "conv9")
    with GradCAM(model, "conv2") as cam:
        with pytest.raises(NcanvasError, match="class 10 is out of range"):
            cam(torch.randn(1, 1, 28, 28), 10)
        with pytest.raises(NcanvasError, match="2 targets for a batch of 1"):
            cam(torch.randn(1, 1, 28, 28), [1, 2])
    with GradCAM(model, "fc") as cam, pytest.raises(NcanvasError, match="pick a conv layer"):
        cam(torch.randn(1, 1, 28, 28))


def test_default_layer_skips_1x1_maps() -> None:
    assert default_target_layer(build_model("simplecnn"), (1, 28, 28)) == "conv2"
    # SimpleNet's last conv is 1x1 on 28x28 input: the default is the last one that can still localise
    assert default_target_layer(build_model("simplenet"), (1, 28, 28)) == "features.conv12"
    assert default_target_layer(build_model("simplenet", 3, 10, 32), (3, 32, 32)) == "features.conv13"


def test_filters_and_feature_maps() -> None:
    model = _model("simplecnn", 1, 28)
    w = filter_weights(model, "conv2")
    assert w.shape == (8, 8, 3, 3)
    grid = filter_grid(w)
    assert grid.shape == (8 * 4 + 1, 8 * 4 + 1) and 0 <= grid.min() and grid.max() <= 1
    rgb = filter_grid(filter_weights(_model("simplenet", 3, 32), "features.conv1"))
    assert rgb.ndim == 3 and rgb.shape[2] == 3
    maps = feature_maps(model, torch.randn(1, 1, 28, 28), ["relu1", "pool2", "fc"])
    assert maps["relu1"].shape == (8, 28, 28) and maps["pool2"].shape == (8, 7, 7) and maps["fc"].shape == (10,)
    assert (maps["relu1"] >= 0).all()
    assert feature_grid(maps["relu1"]).shape == (3 * 29 + 1, 3 * 29 + 1)
    with pytest.raises(NcanvasError, match="not a Conv2d"):
        filter_weights(model, "relu1")


def test_activation_maximisation_raises_the_activation() -> None:
    model = _model("simplecnn", 1, 28)
    cfg = AscentConfig(steps=40, seed=0)
    img = activation_maximization(model, "conv2", 3, (1, 28, 28), (0.1307,), (0.3081,), cfg)
    assert img.shape == (28, 28, 1) and 0 <= img.min() and img.max() <= 1

    def act(pixels: np.ndarray) -> float:
        x = (torch.from_numpy(pixels).permute(2, 0, 1)[None] - 0.1307) / 0.3081
        return float(feature_maps(model, x, ["conv2"])["conv2"][3].mean())

    noise = np.random.default_rng(0).uniform(0.4, 0.6, (28, 28, 1)).astype(np.float32)
    assert act(img) > act(noise)
    with pytest.raises(NcanvasError, match="filter 8 is out of range"):
        activation_maximization(model, "conv2", 8, (1, 28, 28), (0.1307,), (0.3081,), cfg)


def test_class_model_raises_the_logit() -> None:
    model = _model("simplecnn", 1, 28)
    img = class_model(model, 4, (1, 28, 28), (0.1307,), (0.3081,), AscentConfig(steps=40))
    noise = np.random.default_rng(0).uniform(0.4, 0.6, (28, 28, 1)).astype(np.float32)
    with torch.no_grad():
        after, before = (model((torch.from_numpy(a).permute(2, 0, 1)[None] - 0.1307) / 0.3081)[0, 4]
                         for a in (img, noise))
    assert after > before + 0.1
    with pytest.raises(NcanvasError, match="class 10 is out of range"):
        class_model(model, 10, (1, 28, 28), (0.1307,), (0.3081,))


def test_gradient_ascent_leaves_no_weight_gradients() -> None:
    """Only the input's gradient is computed: a cached model (the dashboard's) keeps no .grad tensors."""
    model = _model("simplecnn", 1, 28)
    cfg = AscentConfig(steps=3)
    activation_maximization(model, "conv2", 1, (1, 28, 28), (0.1307,), (0.3081,), cfg)
    class_model(model, 2, (1, 28, 28), (0.1307,), (0.3081,), cfg)
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())  # and training still works afterwards


def test_first_layer_filters_form_a_square_grid() -> None:
    grid = filter_grid(filter_weights(_model("simplecnn", 1, 28), "conv1"))  # 8 filters 3x3 -> 3x3 grid
    assert grid.shape == (3 * 4 + 1, 3 * 4 + 1)
