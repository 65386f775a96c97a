"""The GPU paths, run on a CUDA machine and skipped cleanly without one (``pytest -m gpu tests/test_gpu.py``):
the cnn job with float16 AMP on real MNIST, and artcnn steps with bf16 autocast and channels-last."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch

from core.checkpoint import load_checkpoint
from core.metrics import iter_rows
from tests.vision_helpers import make_art_set, run_art_train, run_train

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NCANVAS_OFFLINE", "1")


def test_simplenet_one_epoch_with_amp_on_real_mnist(ws: Any, mnist_dir: Path) -> None:
    from core.vision.api import classify, load_classifier
    from core.vision.data import load_sample

    t0 = time.perf_counter()
    rt = run_train(ws, "cnn-0001", {"data_dir": str(mnist_dir), "model": "simplenet", "epochs": 1,
                                    "batch_size": 128}, gpu="0")
    wall = time.perf_counter() - t0
    assert rt.device.type == "cuda"
    (end,) = [r for r in iter_rows(rt.paths.metrics) if r.get("event") == "epoch_end"]
    print(f"simplenet, 1 epoch of MNIST on {torch.cuda.get_device_name()}: test acc {end['test_acc']:.4f}, "
          f"job wall {wall:.1f}s")
    assert end["test_acc"] > 0.98 and end["val_acc"] > 0.98
    ck = load_checkpoint(rt.paths.latest, kind="cnn")
    assert ck["scaler"] and ck["scaler"]["scale"] > 0  # float16 autocast ran with a live grad scaler
    clf = load_classifier(rt.paths.best)  # a GPU-trained checkpoint classifies on the CPU
    digit, label, _ = load_sample("mnist:0", mnist_dir)
    assert classify(clf, digit, top_k=1)[0][0] == str(label)


@pytest.mark.parametrize("stream", [False, True])
def test_artcnn_steps_with_bf16_autocast_and_channels_last(ws: Any, tmp_path: Path, stream: bool,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from core.art import model as art_model
    from core.art.api import load_art_classifier, predict

    seen: dict[str, Any] = {}
    forward = art_model.ArtClassifier.forward

    def spy(self: Any, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = forward(self, x)
        if self.training and not seen:
            seen.update(device=x.device.type, input_cl=x.is_contiguous(memory_format=torch.channels_last),
                        weight_cl=self.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last),
                        dtype=out["artist"].dtype)
        return out

    monkeypatch.setattr(art_model.ArtClassifier, "forward", spy)
    csv_path = make_art_set(tmp_path / "art", n=48, size=32)
    rt = run_art_train(ws, "artcnn-0001", {"data": str(csv_path), "image_size": 32, "epochs": 1, "batch_size": 16,
                                           "val_fraction": 0.25, "stream": stream}, gpu="0")
    # bf16 where the GPU has it natively (Ampere and later: no grad scaler needed), float16 + scaler before
    bf16 = torch.cuda.get_device_capability()[0] >= 8
    assert seen == {"device": "cuda", "input_cl": True, "weight_cl": True,
                    "dtype": torch.bfloat16 if bf16 else torch.float16}
    rows = list(iter_rows(rt.paths.metrics))
    train = [r for r in rows if r.get("split") == "train"]
    assert len(train) == 3 and all(0 < r["loss"] < 100 for r in train)
    (val,) = [r for r in rows if r.get("split") == "val"]
    assert {"acc_artist", "top5_style", "acc_genre"} <= set(val)
    ck = load_checkpoint(rt.paths.latest, kind="artcnn")
    assert bool(ck["scaler"]) == (not bf16)  # a GradScaler only for float16
    clf = load_art_classifier(rt.paths.best)  # channels-last CUDA weights load into a CPU model
    preds = predict(clf, str(tmp_path / "art" / "images" / "000000.png"))
    assert set(preds) == {"artist", "style", "genre"}

