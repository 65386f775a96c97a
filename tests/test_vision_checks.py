"""Pictures and predictions that would mislead without a word (issue 12, items 7-9): an empty or flat Grad-CAM,
an activation-maximisation image in a sliver of [0, 1], an image of the opposite polarity to the training data.

The model is built by hand, not trained: a simplecnn whose conv2 outputs 1 everywhere, with class 0's weights all
negative (no positive evidence anywhere: Grad-CAM is all zero) and class 1's all positive (a constant map)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from core.vision.checks import cam_state, cam_warning, invert, opposite_polarity, stretch

MNIST_MEAN, CIFAR_MEAN = (0.1307,), (0.4914, 0.4822, 0.4465)


def test_cam_state_and_warning() -> None:
    assert cam_state(np.zeros((7, 7))) == "empty" and cam_state([[np.nan]]) == "empty"
    assert cam_state(np.full((7, 7), 3.0) + np.eye(7) * 0.01) == "flat"
    peak = np.zeros((7, 7))
    peak[3, 3] = 1.0
    assert cam_state(peak) is None
    assert cam_warning("empty", "7", "conv2", "gradcam", ["conv1", "conv2"]) == \
        "no positive evidence for class 7 at conv2: try Grad-CAM++ or conv1"
    assert cam_warning("flat", "7", "conv1", "gradcam++", ["conv1", "conv2"]).endswith("nearly flat (its colours "
                                                                                       "would only show noise): try Grad-CAM")
    assert cam_warning(None, "7", "conv2", "gradcam", []) is None


def test_polarity_against_the_training_data() -> None:
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255  # a light stroke on a dark background, as MNIST
    assert not opposite_polarity(digit, MNIST_MEAN)
    assert opposite_polarity(invert(digit), MNIST_MEAN)  # a black digit drawn on white
    assert opposite_polarity(np.dstack([invert(digit)] * 3), MNIST_MEAN)
    assert not opposite_polarity(np.dstack([invert(digit)] * 3), CIFAR_MEAN), "natural images: no background rule"


def test_stretch_fills_the_range() -> None:
    dim = np.linspace(0.0, 21 / 255, 64, dtype=np.float32).reshape(8, 8)  # the nearly black maxact picture
    out, lo, hi = stretch(dim)
    assert out.min() == 0.0 and out.max() == 1.0 and hi == pytest.approx(21 / 255)
    assert np.allclose(stretch(np.full((2, 2), 0.3))[0], 0.3)  # a constant image stays as it is


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import torch

    from core.checkpoint import make_checkpoint, save_checkpoint
    from core.paths import Workspace
    from core.runrec import JobRecord, write_record
    from core.vision.models import build_model

    root = tmp_path_factory.mktemp("crafted")
    ws = Workspace(root / "ws").ensure()
    model = build_model("simplecnn", 1, 10, 28)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.conv2.bias.fill_(1.0)  # conv2 is 1 everywhere
        model.fc.weight[0].fill_(-0.01)  # class 0: only negative evidence
        model.fc.weight[1].fill_(0.01)  # class 1: the same evidence everywhere
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    meta = {"dataset": "mnist", "in_channels": 1, "num_classes": 10, "image_size": 28, "mean": [0.1307],
            "std": [0.3081], "class_names": [str(i) for i in range(10)], "model": "simplecnn",
            "samples": torch.from_numpy(digit)[None, None].clone(), "sample_labels": torch.tensor([1])}
    ck = make_checkpoint(kind="cnn", arch="simplecnn", config={"dataset": "mnist"}, model=model.state_dict(),
                         extra={"vision": meta}, with_rng=False)
    run = ws.run("cnn-0001").make()
    write_record(run.job_json, JobRecord(id="cnn-0001", kind="cnn", state="finished", config={"dataset": "mnist"},
                                         progress={"val_acc": 0.5}))
    path = save_checkpoint(ck, run.ckpt_dir / "best_model.pt")
    Image.fromarray(digit).save(root / "light.png")
    Image.fromarray(invert(digit)).save(root / "dark-on-white.png")
    return {"ws": ws, "ckpt": str(path), "root": root}


def cli(t: dict[str, Any], *args: str) -> Any:
    from tui.cli import app

    return CliRunner().invoke(app, ["--home", str(t["ws"].root), *args])


def test_explain_says_when_the_map_is_empty_or_flat(crafted: dict[str, Any]) -> None:
    from core.vision.api import explain, explanation_warning, load_classifier

    clf = load_classifier(crafted["ckpt"])
    image = str(crafted["root"] / "light.png")
    empty = explain(clf, image, "gradcam", 0)
    assert empty.state == "empty" and not empty.heat.any()
    assert explanation_warning(clf, empty) == "no positive evidence for class 0 at conv2: try Grad-CAM++ or conv1"
    assert explain(clf, image, "gradcam", 1).state == "flat"


def test_gradcam_command_says_so_instead_of_drawing(crafted: dict[str, Any], tmp_path: Path) -> None:
    png = tmp_path / "cam.png"
    res = cli(crafted, "gradcam", str(crafted["root"] / "light.png"), "-c", crafted["ckpt"], "--class", "0",
              "--png", str(png))
    assert res.exit_code == 0, res.output
    assert "no positive evidence for class 0 at conv2: try Grad-CAM++ or conv1" in res.stdout
    assert "▀" not in res.stdout and "▄" not in res.stdout and not png.exists(), "no misleading picture"
    res = cli(crafted, "gradcam", str(crafted["root"] / "light.png"), "-c", crafted["ckpt"], "--class", "1", "--json")
    assert "nearly flat" in json.loads(res.stdout)["warning"]


def test_classify_warns_about_polarity_and_inverts(crafted: dict[str, Any]) -> None:
    dark = str(crafted["root"] / "dark-on-white.png")
    res = cli(crafted, "classify", dark, "-c", crafted["ckpt"], "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["opposite_polarity"] is True
    assert "the opposite of mnist's training images" in res.stderr and "--invert" in res.stderr
    res = cli(crafted, "classify", dark, "-c", crafted["ckpt"], "--invert", "--json")
    out = json.loads(res.stdout)
    assert out["inverted"] is True and out["opposite_polarity"] is False and "note" not in res.stderr
    res = cli(crafted, "classify", str(crafted["root"] / "light.png"), "-c", crafted["ckpt"])
    assert "note" not in res.stderr


def test_maxact_is_scaled_to_its_own_range(crafted: dict[str, Any], tmp_path: Path) -> None:
    png = tmp_path / "maxact.png"
    res = cli(crafted, "viz", "maxact", "-c", crafted["ckpt"], "--steps", "4", "--png", str(png))
    assert res.exit_code == 0, res.output
    assert "scaled from its own range" in res.stdout
    pixels = np.asarray(Image.open(png).convert("L"))
    assert pixels.max() >= 250 and pixels.min() <= 5, (pixels.min(), pixels.max())


async def test_panes_say_it_too(crafted: dict[str, Any]) -> None:
    from tests.tui_pilot import wait_until
    from tui.app import NcanvasApp

    app = NcanvasApp(crafted["ws"], host="test", gpu_stats=lambda: [])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        pane = app.query_one("ClassifyPane")
        await wait_until(pilot, lambda: pane.query_one("#ckpt").value == crafted["ckpt"], what="checkpoint")
        pane.query_one("#image").value = str(crafted["root"] / "dark-on-white.png")
        await pilot.press("ctrl+r")
        status = pane.query_one("#status")
        await wait_until(pilot, lambda: "polarity" in str(status.render()), timeout=60, what="polarity note")
        assert "press i to invert" in str(status.render()) and status.has_class("-warning")
        await pilot.press("i")
        await wait_until(pilot, lambda: "(inverted)" in str(status.render()), timeout=60, what="inverted")
        assert "polarity" not in str(status.render())

        await pilot.press("3")
        cam = app.query_one("GradCamPane")
        cam.query_one("#image").value = str(crafted["root"] / "light.png")
        cam.target = 0
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: "no positive evidence" in str(cam.query_one("#status").render()),
                         timeout=60, what="empty map said")
        for _ in range(4):  # filters, features, maxact: the maxact caption says it was scaled
            await pilot.press("v")
            await wait_until(pilot, lambda: "…" not in str(cam.query_one("#status").render()), timeout=60)
        await wait_until(pilot, lambda: "scaled from its own range" in str(cam.query_one("#status").render()),
                         timeout=60, what="maxact caption")
