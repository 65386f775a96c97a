"""`ncanvas analyze`: image -> art CNN -> Grad-CAM per head -> LLM explanation, with tiny checkpoints trained here."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.paths import Workspace
from tests.test_llm_train import TINY_LLM, run_to_end
from tui.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("analyze")).ensure()
    art = run_to_end(ws, "artcnn", {"synthetic_n": 80, "image_size": 32, "epochs": 1, "batch_size": 32})
    llm = run_to_end(ws, "llm", dict(TINY_LLM, epochs=1, n_pairs=120))
    image = ws.checkpoints / art / "synthetic-art" / "images" / "000001.png"
    return ws, art, llm, image


def cli(ws, *args: str):
    return runner.invoke(app, ["--home", str(ws.root), *args])


@pytest.mark.slow
def test_analyze_end_to_end_json(chain) -> None:
    from core.explain import format_prompt

    ws, art, llm, image = chain
    t0 = time.perf_counter()
    res = cli(ws, "analyze", str(image), "--cnn", art, "--llm", llm, "--max-new-tokens", "24", "--json")
    latency = time.perf_counter() - t0
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    preds = out["predictions"]
    assert set(preds) == {"artist", "style", "genre"} and all(len(v) == 3 for v in preds.values())
    for head, path in out["cams"].items():
        assert Path(path).is_file() and head in Path(path).name
    top = {h: preds[h][0] for h in preds}
    expected = format_prompt(top["artist"]["label"], round(100 * top["artist"]["prob"], 1),
                             top["style"]["label"], round(100 * top["style"]["prob"], 1),
                             top["genre"]["label"], round(100 * top["genre"]["prob"], 1))
    assert out["prompt"] == expected  # the CNN's top-1 triple feeds the LLM exactly as the dataset formats it
    (expl,) = out["explanations"]
    assert expl["text"].strip() and expl["checkpoint"].endswith("best_model.pt")
    assert isinstance(expl["pass"], bool) and {"artist", "numbers", "ending"} <= set(expl["facts"])  # the verdict
    assert Path(out["cams"]["artist"]).parent.name.startswith(image.stem + "-")
    print(f"analyze latency (CPU, tiny models, incl. loading): {latency:.2f}s")


@pytest.mark.slow
def test_analyze_streams_and_compares(chain) -> None:
    ws, art, llm, image = chain
    res = cli(ws, "analyze", str(image), "--cnn", art, "--llm", llm, "--compare", llm, "--max-new-tokens", "8",
              "--seed", "1", "--cmap", "inferno", "--colors", "256")
    assert res.exit_code == 0, res.output
    assert "\x1b[38;5;" in res.stdout and "\x1b[38;2;" not in res.stdout  # 256-colour escapes only
    assert "Artist" in res.stdout and "Grad-CAM:" in res.stdout and "CNN Classification Results:" in res.stdout
    assert res.stdout.count(" artist ") >= 2 and "✗ ends mid-sentence" in res.stdout  # a verdict per explainer
    res = cli(ws, "analyze", str(image), "--cnn", art, "--llm", llm, "--compare", llm, "--max-new-tokens", "8",
              "--temperature", "0", "--json")
    assert res.exit_code == 0, res.output
    both = json.loads(res.stdout)["explanations"]  # the same model twice: two entries, the same greedy text
    assert len(both) == 2 and both[0]["text"] == both[1]["text"]


@pytest.mark.slow
def test_each_head_gets_a_localised_cam(chain) -> None:
    """The CAM layer is the last conv with a 4x4 map or more, so every head's map varies over the image."""
    from core.art.api import head_cams, load_art_classifier

    ws, art, llm, image = chain
    clf = load_art_classifier(ws.run(art).best)
    cams = head_cams(clf, clf.pixels(image))
    for head, cam in cams.items():
        assert cam.shape == (32, 32) and cam.min() >= 0 and cam.max() <= 1, head
        assert cam.max() - cam.min() > 0.5, (head, cam.min(), cam.max())


@pytest.mark.slow
def test_analyze_bad_inputs_are_one_line(chain, tmp_path: Path) -> None:
    ws, art, llm, image = chain
    (tmp_path / "notes.png").write_text("not an image")
    cases = [
        (["analyze", str(image), "--cnn", str(tmp_path / "missing.pt")], "checkpoint not found"),
        (["analyze", str(image), "--cnn", llm], "expected artcnn"),
        (["analyze", str(tmp_path / "notes.png"), "--cnn", art], "is not an image"),
        (["analyze", str(tmp_path / "nope.png"), "--cnn", art], "image not found"),
        (["analyze", str(image), "--cnn", art, "--llm", art], "expected"),
        (["analyze", str(image), "--cnn", art, "--compare", llm], "--compare needs --llm"),
        (["analyze", str(image), "--cnn", art, "--out", str(image)], "is not a folder"),
        (["analyze", str(image), "--cnn", art, "--cmap", "rainbow"], "--cmap must be one of"),
        (["analyze", str(image), "--cnn", art, "--colors", "16"], "--colors must be truecolor or 256"),
    ]
    for args, msg in cases:
        res = cli(ws, *args)
        assert res.exit_code == 1, (args, res.output)
        assert msg in res.stderr and res.stderr.count("\n") == 1, (args, res.stderr)


def test_interleaved_streams_leave_grad_mode_alone(chain) -> None:
    import torch

    from core.llm.generate import load_explainer
    from core.llm.sampling import SamplingSettings

    ws, _, llm, _ = chain
    ex = load_explainer(ws.checkpoints / llm / "best_model.pt")
    settings = SamplingSettings(6, 0.0, 0, 1.0, 1.0, 0)
    a, b = ex.generate_ids("CNN Classification Results:\n", settings), ex.generate_ids("Explain", settings)
    for _ in range(3):
        next(a, None)
        assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
        next(b, None)
    list(a)
    list(b)
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


@pytest.fixture(scope="module")
def tiny_art(tmp_path_factory):
    """A tiny artcnn checkpoint trained in this process (seconds), for the checks that need no LLM."""
    from tests.vision_helpers import make_art_set, run_art_train

    root = tmp_path_factory.mktemp("tiny-art")
    ws = Workspace(root / "ws").ensure()
    csv_path = make_art_set(root / "art", n=24, size=16)
    rt = run_art_train(ws, "artcnn-0001", {"data": str(csv_path), "backbone": "mobilenet_v3_small", "image_size": 16,
                                           "epochs": 1, "batch_size": 8, "val_fraction": 0.25})
    return ws, str(rt.paths.best), root / "art" / "images" / "000001.png"


def test_a_bad_llm_fails_in_one_line_before_any_cnn_work(tiny_art, tmp_path: Path) -> None:
    ws, art, image = tiny_art
    cams = tmp_path / "cams"
    for args, msg in ((["--llm", str(tmp_path / "missing.pt")], "checkpoint not found"),
                      (["--llm", art], "is a 'artcnn' checkpoint (art-mobilenet_v3_small); expected llm or gpt2"),
                      (["--llm", "llm-0042"], "no checkpoint file 'llm-0042'")):
        res = cli(ws, "analyze", str(image), "--cnn", art, "--out", str(cams), *args)
        assert res.exit_code == 1, (args, res.output)
        assert msg in res.stderr and res.stderr.count("\n") == 1, (args, res.stderr)
        assert res.stdout == "" and not cams.exists(), args  # no picture printed, no CAM written


def test_analyze_without_llm_reports_its_timings(tiny_art, tmp_path: Path) -> None:
    ws, art, image = tiny_art
    res = cli(ws, "analyze", str(image), "--cnn", art, "--out", str(tmp_path / "cams"), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    t = out["timings"]
    assert set(t) == {"cnn_load_s", "llm_load_s", "cnn_cams_s", "llm_first_token_s", "llm_s", "total_s"}
    assert t["llm_first_token_s"] == [] and 0 < t["cnn_cams_s"] <= t["total_s"] and out["explanations"] == []
    assert sorted(p.name for p in (tmp_path / "cams").iterdir()) == [f"gradcam_{h}.png" for h in ("artist", "genre", "style")]


def test_analyze_an_image_too_large_to_decode_is_one_line(tiny_art, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    ws, art, _ = tiny_art
    big = tmp_path / "big.png"
    Image.new("RGB", (120, 100)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4000)
    res = cli(ws, "analyze", str(big), "--cnn", art)
    assert res.exit_code == 1 and res.stderr.count("\n") == 1, res.output
    assert "image too large: 120×100 pixels" in res.stderr
