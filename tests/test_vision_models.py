"""Model shapes, parameter counts and the properties interpretability relies on."""

import pytest
import torch
import torch.nn as nn

from core.errors import NcanvasError
from core.vision.models import MODEL_NAMES, build_model, conv_layer_names, count_params, describe

# (name, in_channels, image_size) -> exact parameter count
EXPECTED = {
    ("simplecnn", 1, 28): 4_594,  # conv 80 + conv 584 + fc 392*10+10
    ("simplecnn", 3, 32): 5_938,
    ("lenet-demo", 1, 28): 27_354,  # FC 200 -> 128 -> 10
    ("lenet-demo", 3, 32): 38_690,
    ("simplenet", 1, 28): 5_497_226,
    ("simplenet", 3, 32): 5_498_378,  # SimpleNet-5M on CIFAR
}


@pytest.mark.parametrize("name,c,size", list(EXPECTED))
def test_shapes_and_param_counts(name: str, c: int, size: int) -> None:
    model = build_model(name, c, 10, size).eval()
    assert count_params(model) == EXPECTED[(name, c, size)]
    with torch.no_grad():
        assert model(torch.randn(3, c, size, size)).shape == (3, 10)


def test_approximate_sizes_from_the_issue() -> None:
    assert 4_500 <= count_params(build_model("simplecnn")) <= 4_700
    assert 5.4e6 <= count_params(build_model("simplenet", 3, 10, 32)) <= 5.6e6
    fc1 = build_model("lenet-demo").fc1
    assert (fc1.in_features, fc1.out_features) == (200, 128)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_relus_are_modules_not_inplace(name: str) -> None:
    relus = [m for m in build_model(name).modules() if isinstance(m, nn.ReLU)]
    assert relus and not any(r.inplace for r in relus)


def test_simplenet_details() -> None:
    model = build_model("simplenet", 3, 10, 32)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 13 and all(b.momentum == 0.05 for b in bns)
    assert conv_layer_names(model)[-1] == "features.conv13"
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 4
    # on 28x28 the last map is 1x1 and on 32x32 2x2: the global max-pool takes both
    desc = {d["name"]: d for d in describe(model, 32, 3)}
    assert desc["features.conv13"]["out_shape"] == [256, 2, 2]


def test_describe_and_names() -> None:
    desc = describe(build_model("simplecnn"), 28, 1)
    assert [d["name"] for d in desc] == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "fc"]
    assert desc[-1]["out_shape"] == [10] and desc[0]["params"] == 80


def test_unknown_model_is_one_line_error() -> None:
    with pytest.raises(NcanvasError, match="unknown model 'resnet'"):
        build_model("resnet")
