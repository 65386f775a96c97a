"""The vision CLI end to end on a really trained checkpoint: classify, gradcam, viz, export-json, bad inputs."""

import json
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from core.paths import Workspace
from tests.vision_helpers import run_train
from tui.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.conftest import MNIST_DIR

    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found in {MNIST_DIR}")
    root = tmp_path_factory.mktemp("vision-cli")
    ws = Workspace(root / "ws").ensure()
    rt = run_train(ws, "cnn-0001", {"data_dir": str(MNIST_DIR), "epochs": 2, "limit_train": 6000,
                                    "limit_test": 500, "batch_size": 64})
    from core.vision.data import load_sample

    digit, label, _ = load_sample("mnist:0", MNIST_DIR)  # a 7
    big = Image.fromarray(digit[..., 0]).resize((96, 96)).convert("RGBA")  # another size and mode
    big.save(root / "seven.png")
    Image.fromarray(digit[..., 0]).convert("RGB").save(root / "seven.jpg", quality=95)
    return {"ws": ws, "ckpt": str(rt.paths.best), "root": root, "mnist": str(MNIST_DIR), "label": label}


def invoke(t: dict[str, Any], *args: str) -> Any:
    return runner.invoke(app, ["--home", str(t["ws"].root), *args])


def test_classify_file_of_any_size_and_mode(trained: dict[str, Any]) -> None:
    for name in ("seven.png", "seven.jpg"):
        res = invoke(trained, "classify", str(trained["root"] / name), "-c", trained["ckpt"], "--top-k", "3", "--json")
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        assert out["top"][0]["class"] == "7" and len(out["top"]) == 3
        assert out["top"][0]["prob"] >= out["top"][1]["prob"]


def test_classify_sample_with_job_id_as_checkpoint(trained: dict[str, Any]) -> None:
    res = invoke(trained, "classify", "--sample", "mnist:0", "-c", "cnn-0001")  # data dir from the checkpoint
    assert res.exit_code == 0, res.output
    assert "mnist:0 (label 7)" in res.stdout and res.stdout.splitlines()[1].split()[0] == "7"


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "guided", "guided-gradcam"])
def test_gradcam_methods(trained: dict[str, Any], method: str) -> None:
    png = trained["root"] / f"{method}.png"
    res = invoke(trained, "gradcam", "--sample", "mnist:0", "-c", trained["ckpt"], "--method", method,
                 "--png", str(png), "--width", "28", "--colors", "truecolor")
    assert res.exit_code == 0, res.output
    assert "predicted 7" in res.stdout and "\x1b[38;2;" in res.stdout and "▄" in res.stdout
    assert Image.open(png).size == (28 * 8, 28 * 8)


def test_gradcam_json_layer_and_class(trained: dict[str, Any]) -> None:
    res = invoke(trained, "gradcam", str(trained["root"] / "seven.png"), "-c", trained["ckpt"], "--layer", "conv1",
                 "--class", "3", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    heat = np.array(out["heat"])
    assert out["layer"] == "conv1" and out["target"] == 3 and out["predicted"] == 7
    assert heat.shape == (28, 28) and heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    res = invoke(trained, "gradcam", "--sample", "mnist:0", "-c", trained["ckpt"], "--list-layers")
    assert res.stdout.split() == ["conv1", "conv2"]


def test_viz_commands(trained: dict[str, Any]) -> None:
    root, ck = trained["root"], trained["ckpt"]
    for args, caption in ((["filters", "--layer", "conv2"], "filters of conv2"),
                          (["features", "--sample", "mnist:1", "--layer", "relu2"], "feature maps of relu2 for mnist:1"),
                          (["maxact", "--layer", "conv2", "--filter", "5", "--steps", "20"],
                           "most excites filter 5 of conv2"),
                          (["class-model", "--class", "3", "--steps", "60"], "maximises class 3"),
                          (["filters"], "filters of conv1")):
        png = root / f"viz-{args[0]}.png"
        res = invoke(trained, "viz", *args, "-c", ck, "--png", str(png), "--colors", "256")
        assert res.exit_code == 0, (args, res.output)
        assert "\x1b[38;5;" in res.stdout and png.is_file() and caption in res.stdout.splitlines()[0]


def test_class_model_of_a_trained_net_is_classified_as_its_class(trained: dict[str, Any]) -> None:
    from core.vision.api import class_model_image, classify, load_classifier

    clf = load_classifier(trained["ckpt"])
    img = class_model_image(clf, "3", steps=100)
    top = classify(clf, (img * 255).astype(np.uint8), top_k=1)
    assert top[0][0] == "3"


def test_export_json_command(trained: dict[str, Any]) -> None:
    out = trained["root"] / "demo.json"
    res = invoke(trained, "export-json", "cnn-0001", "--out", str(out), "--samples", "2")
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert [e["epoch"] for e in doc["epochs"]] == [0, 2] and len(doc["samples"]) == 2
    assert doc["epochs"][1]["metrics"]["test_acc"] > 0.8


def _bad_inputs(t: dict[str, Any]) -> list[tuple[list[str], str]]:
    root, ck = t["root"], t["ckpt"]
    (root / "notes.txt").write_text("hello")
    data = (root / "seven.png").read_bytes()
    (root / "cut.png").write_bytes(data[: len(data) // 2])
    import torch

    from core.checkpoint import make_checkpoint, save_checkpoint

    save_checkpoint(make_checkpoint(kind="demo", arch="mlp", config={}, model=torch.nn.Linear(2, 1).state_dict()),
                    root / "demo.pt")
    seven = str(root / "seven.png")
    return [
        (["classify", str(root / "notes.txt"), "-c", ck], "is not an image"),
        (["classify", str(root / "cut.png"), "-c", ck], "is truncated or corrupt"),
        (["classify", str(root / "nope.png"), "-c", ck], "image not found"),
        (["classify", str(root), "-c", ck], "is a directory"),
        (["classify", seven, "-c", str(root / "demo.pt")], "is a 'demo' checkpoint (mlp); expected cnn"),
        (["classify", seven, "-c", str(root / "notes.txt")], "truncated or not a torch checkpoint"),
        (["classify", seven, "-c", str(root / "missing.pt")], "checkpoint not found"),
        (["classify", seven, "-c", "cnn-0099"], "no checkpoint file 'cnn-0099'"),
        (["gradcam", seven, "-c", ck, "--layer", "conv7"], "no layer 'conv7' in this model; conv layers: conv1, conv2"),
        (["gradcam", seven, "-c", ck, "--class", "10"], "class 10 is out of range"),
        (["gradcam", seven, "-c", ck, "--class", "cat"], "no class 'cat'"),
        (["gradcam", seven, "-c", ck, "--method", "lime"], "--method must be one of"),
        (["gradcam", seven, "-c", ck, "--cmap", "rainbow"], "--cmap must be one of"),
        (["gradcam", seven, "-c", ck, "--layer", "fc"], "pick a conv layer"),
        (["classify", seven, "--sample", "mnist:1", "-c", ck], "exactly one of IMAGE or --sample"),
        (["classify", "-c", ck], "exactly one of IMAGE or --sample"),
        (["classify", "--sample", "mnist:99999", "-c", ck], "out of range"),
        (["classify", "--sample", "svhn:1", "-c", ck], "unknown dataset 'svhn'"),
        (["classify", "--sample", "mnist:1", "--data-dir", str(root / "empty"), "-c", ck], "data not found"),
        (["viz", "maxact", "-c", ck, "--layer", "conv2", "--filter", "8", "--steps", "1"], "filter 8 is out of range"),
        (["viz", "filters", "-c", ck, "--layer", "pool1"], "not a Conv2d"),
        (["viz", "class-model", "-c", ck, "--class", "12", "--steps", "1"], "class 12 is out of range"),
        (["export-json", "cnn-0042"], "no cnn checkpoints"),
    ]


def test_bad_inputs_give_one_clear_line(trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NCANVAS_OFFLINE", "1")
    for args, msg in _bad_inputs(trained):
        res = invoke(trained, *args)
        assert res.exit_code == 1, (args, res.output)
        assert msg in res.stderr, (args, res.stderr)
        assert res.stderr.startswith("ncanvas: ") and res.stderr.count("\n") == 1, (args, res.stderr)
        assert "Traceback" not in res.output


def test_an_image_too_large_to_decode_is_one_line(trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """PIL's DecompressionBombError (a 30000x30000 PNG) reaches the user as one line, not a class name."""
    big = trained["root"] / "big.png"
    Image.new("L", (120, 100)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4000)  # the same refusal, from a small file
    for cmd in ("classify", "gradcam"):
        res = invoke(trained, cmd, str(big), "-c", trained["ckpt"])
        assert res.exit_code == 1, res.output
        assert res.stderr == f"ncanvas: {big}: image too large: 120×100 pixels, over the 8,000 pixels PIL decodes " \
                             "safely; downscale it first\n"


def test_class_predicted_and_blanks(trained: dict[str, Any]) -> None:
    seven = str(trained["root"] / "seven.png")
    for value, target in (("predicted", 7), (" Predicted ", 7), (" 3 ", 3), ("", 7)):
        res = invoke(trained, "gradcam", seven, "-c", trained["ckpt"], "--class", value, "--json")
        assert res.exit_code == 0, (value, res.output)
        out = json.loads(res.stdout)
        assert out["predicted"] == 7 and out["target"] == target, value
    res = invoke(trained, "gradcam", seven, "-c", trained["ckpt"], "--class", "seven")
    assert res.exit_code == 1 and "no class 'seven'; classes: 0, 1, 2" in res.stderr and "(or predicted)" in res.stderr
    res = invoke(trained, "viz", "class-model", "-c", trained["ckpt"], "--class", "predicted", "--steps", "1")
    assert res.exit_code == 1 and "class-model needs a class" in res.stderr
