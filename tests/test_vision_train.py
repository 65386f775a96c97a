"""Real training on MNIST through the cnn job's train() under the real JobRuntime: learning, artifacts,
exact stop/resume, early stopping, other datasets, and the browser-demo JSON export."""

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from core.checkpoint import load_checkpoint
from core.errors import NcanvasError
from core.metrics import iter_rows
from tests.vision_helpers import make_cifar_dataset, make_idx_dataset, run_train


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NCANVAS_OFFLINE", "1")


def _rows(rt: Any) -> list[dict[str, Any]]:
    return list(iter_rows(rt.paths.metrics))


def test_a_few_real_steps_lower_the_loss(mnist_dir: Path) -> None:
    from core.vision.data import get_info, load_split, normalize
    from core.vision.models import build_model

    torch.manual_seed(0)
    data = load_split("mnist", "test", mnist_dir)
    x, y = normalize(data.x[:2048], get_info("mnist")), data.y[:2048]
    model = build_model("simplecnn")
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for i in range(30):
        idx = slice(64 * (i % 32), 64 * (i % 32 + 1))
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5


def test_short_real_run_reaches_90_percent_with_all_artifacts(ws: Any, mnist_dir: Path) -> None:
    rt = run_train(ws, "cnn-0001", {"data_dir": str(mnist_dir), "epochs": 2, "limit_train": 8000,
                                    "limit_test": 2000, "save_every_epoch": True, "batch_size": 64})
    rows = _rows(rt)
    ends = [r for r in rows if r.get("event") == "epoch_end"]
    assert [e["epoch"] for e in ends] == [1, 2]
    assert ends[-1]["test_acc"] > 0.90 and ends[-1]["val_acc"] > 0.90
    conf = ends[-1]["confusion"]
    assert len(conf) == 10 and sum(map(sum, conf)) == 2000
    assert sum(conf[i][i] for i in range(10)) / 2000 == pytest.approx(ends[-1]["test_acc"])
    train = [r for r in rows if r.get("split") == "train"]
    assert len(train) == 2 * 113 and all("img_s" in r and "lr" in r for r in train)
    # each row logs the rate its own step used: OneCycle starts at lr / 25 and ends near zero
    assert train[0]["lr"] == pytest.approx(0.01 / 25) and train[-1]["lr"] < 1e-5
    d = rt.paths.ckpt_dir
    for name in ("epoch_0.pt", "epoch_1.pt", "epoch_2.pt", "latest.pt", "best_model.pt", "training_curves.png",
                 "misclassified.png", "misclassified.json"):
        assert (d / name).is_file(), name
    mis = json.loads((d / "misclassified.json").read_text())
    assert mis["total"] == 2000 and 0 < mis["total_wrong"] < 200
    assert all(s["true"] != s["predicted"] for s in mis["shown"])
    ck = load_checkpoint(d / "best_model.pt", kind="cnn")
    meta = ck["extra"]["vision"]
    assert meta["image_size"] == 28 and meta["class_names"][3] == "3" and meta["mean"] == [0.1307]
    assert meta["samples"].shape == (8, 1, 28, 28)
    assert (d / "best_model.pt").stat().st_size < 200_000, "8 sample images, not the test set under a view"
    untrained = load_checkpoint(d / "epoch_0.pt", kind="cnn")
    assert untrained["step"] == 0 and untrained["epoch"] == 0
    assert json.loads(rt.paths.job_json.read_text())["progress"]["step"] == 226


def _comparable(rows: list[dict[str, Any]]) -> list[tuple]:
    out = []
    for r in rows:
        if "split" in r:
            out.append((r["split"], r["step"], r["epoch"], r.get("loss"), r.get("acc"), r.get("lr")))
    return out


def test_stop_and_resume_is_bit_identical(ws: Any, mnist_dir: Path) -> None:
    values = {"data_dir": str(mnist_dir), "epochs": 2, "limit_train": 1200, "limit_test": 300, "batch_size": 64,
              "val_fraction": 0.1}  # 1080 train images -> 17 batches per epoch
    ref = run_train(ws, "cnn-0001", values)
    a = run_train(ws, "cnn-0002", values, stop_at_step=5)  # mid-epoch
    ck = load_checkpoint(a.paths.latest, kind="cnn")
    assert (ck["step"], ck["epoch"], ck["batch_in_epoch"]) == (5, 0, 5)
    assert not (a.paths.ckpt_dir / "misclassified.json").exists()  # stopped jobs skip the final gallery
    run_train(ws, "cnn-0002", values, resuming=True, stop_at_step=17)  # last batch of epoch 0
    b = run_train(ws, "cnn-0002", values, resuming=True)
    assert _comparable(_rows(ref)) == _comparable(_rows(b))
    sa = load_checkpoint(ref.paths.latest)["model"]
    sb = load_checkpoint(b.paths.latest)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_early_stopping(ws: Any, tmp_path: Path) -> None:
    make_idx_dataset(tmp_path / "data", n_train=200, n_test=40)
    rt = run_train(ws, "cnn-0001", {"data_dir": str(tmp_path / "data"), "epochs": 6, "lr": 0.0,
                                    "patience": 2, "batch_size": 50, "scheduler": "none"})
    rows = _rows(rt)
    stop = [r for r in rows if r.get("event") == "early_stop"]
    assert stop and stop[0]["epoch"] == 3  # epoch 1 sets the best; 2 and 3 bring nothing
    assert max(r["epoch"] for r in rows if r.get("event") == "epoch_end") == 3


@pytest.mark.parametrize("model", ["lenet-demo", "simplenet"])
def test_fashion_format_with_other_models(ws: Any, tmp_path: Path, model: str) -> None:
    make_idx_dataset(tmp_path / "data" / "fashion-mnist", n_train=40, n_test=16)
    rt = run_train(ws, "cnn-0001", {"data_dir": str(tmp_path / "data"), "dataset": "fashion-mnist",
                                    "model": model, "epochs": 1, "batch_size": 16, "optimizer": "sgd"})
    ck = load_checkpoint(rt.paths.best, kind="cnn")
    assert ck["arch"] == model and ck["extra"]["vision"]["class_names"][0] == "T-shirt/top"


def test_cifar_format_with_augmentation(ws: Any, tmp_path: Path) -> None:
    make_cifar_dataset(tmp_path / "data", per_batch=12)
    rt = run_train(ws, "cnn-0001", {"data_dir": str(tmp_path / "data"), "dataset": "cifar10", "epochs": 1,
                                    "batch_size": 16, "optimizer": "adamw", "weight_decay": 0.01})
    meta = load_checkpoint(rt.paths.best, kind="cnn")["extra"]["vision"]
    assert meta["in_channels"] == 3 and meta["image_size"] == 32 and meta["samples"].shape == (8, 3, 32, 32)


def test_missing_data_fails_with_the_file_names(ws: Any, tmp_path: Path) -> None:
    with pytest.raises(NcanvasError, match="t10k|train-images"):
        run_train(ws, "cnn-0001", {"data_dir": str(tmp_path / "empty"), "epochs": 1})


def test_config_validation() -> None:
    from jobs.cnn import CONFIG
    from jobs.config import build_config

    with pytest.raises(NcanvasError, match="--model must be one of"):
        build_config(CONFIG, {"model": "resnet"})
    with pytest.raises(NcanvasError, match="--limit-train is too small"):
        build_config(CONFIG, {"limit_train": 3, "val_fraction": 0.1})
    from core.vision.data import DATASET_NAMES
    from core.vision.models import MODEL_NAMES
    from jobs.cnn import DATASET_CHOICES, MODEL_CHOICES

    assert MODEL_CHOICES == MODEL_NAMES and DATASET_CHOICES == DATASET_NAMES


def test_export_json_round_trip(ws: Any, tmp_path: Path) -> None:
    from core.vision.export import export_run, load_export, state_dict_from_export
    from core.vision.models import build_model

    make_idx_dataset(tmp_path / "data", n_train=120, n_test=24)
    rt = run_train(ws, "cnn-0001", {"data_dir": str(tmp_path / "data"), "epochs": 2, "batch_size": 32,
                                    "save_every_epoch": True, "model": "lenet-demo"})
    out = tmp_path / "export.json"
    res = export_run(rt.paths.ckpt_dir, rt.paths.metrics, out, max_samples=2)
    assert res["epochs"] == [0, 1, 2]
    doc = load_export(out)
    assert doc["arch"] == "lenet-demo" and [e["epoch"] for e in doc["epochs"]] == [0, 1, 2]
    assert [a["name"] for a in doc["architecture"]][:2] == ["conv1", "relu1"]
    assert set(doc["epochs"][2]["metrics"]) >= {"train_loss", "val_acc", "test_acc"}
    assert doc["epochs"][1]["feature_maps"][0]["relu1"]["shape"] == [4, 26, 26]
    assert len(doc["samples"]) == 2 and len(doc["samples"][0]["pixels"]) == 784
    for entry, name in ((doc["epochs"][0], "epoch_0.pt"), (doc["epochs"][2], "epoch_2.pt")):
        model = build_model("lenet-demo")
        model.load_state_dict(state_dict_from_export(entry))  # weights come back exactly
        ck = load_checkpoint(rt.paths.ckpt_dir / name)["model"]
        assert all(torch.equal(model.state_dict()[k], ck[k]) for k in ck)
    with pytest.raises(NcanvasError, match="not an ncanvas cnn export"):
        (tmp_path / "x.json").write_text("{}")
        load_export(tmp_path / "x.json")


def test_export_labels_a_mid_epoch_latest_as_partial(ws: Any, tmp_path: Path) -> None:
    """A run stopped mid-epoch: latest.pt holds weights past the last epoch end; the export must not pass them
    off as that epoch's (with its metrics), and a latest.pt that repeats an epoch file is not exported twice."""
    from core.vision.export import export_run, load_export, state_dict_from_export

    make_idx_dataset(tmp_path / "data", n_train=120, n_test=24)  # 108 train images -> 4 batches per epoch
    values = {"data_dir": str(tmp_path / "data"), "epochs": 2, "batch_size": 32, "model": "lenet-demo"}
    rt = run_train(ws, "cnn-0001", values, stop_at_step=6)  # 2 batches into epoch 2
    res = export_run(rt.paths.ckpt_dir, rt.paths.metrics, tmp_path / "a.json", max_samples=1)
    assert res["epochs"] == [0] and res["partial"] == {"epoch": 1, "step": 6, "batch_in_epoch": 2}
    doc = load_export(tmp_path / "a.json")
    first, part = doc["epochs"]
    assert (first["epoch"], first["checkpoint"], first["partial"], first["step"]) == (0, "epoch_0.pt", False, 0)
    assert (part["epoch"], part["checkpoint"], part["partial"], part["step"], part["batch_in_epoch"]) == \
        (1, "latest.pt", True, 6, 2)
    assert part["metrics"] == {}  # epoch 1's val/test figures describe other weights
    ck = load_checkpoint(rt.paths.latest)["model"]
    assert all(torch.equal(state_dict_from_export(part)[k], ck[k]) for k in ck)
    b = run_train(ws, "cnn-0002", dict(values, save_every_epoch=True))  # latest.pt = epoch_2.pt
    res = export_run(b.paths.ckpt_dir, b.paths.metrics, tmp_path / "b.json", max_samples=1)
    doc = load_export(tmp_path / "b.json")
    assert res["partial"] is None and [(e["epoch"], e["checkpoint"]) for e in doc["epochs"]] == \
        [(0, "epoch_0.pt"), (1, "epoch_1.pt"), (2, "epoch_2.pt")]


@pytest.mark.slow
def test_real_process_sigterm_and_resume_match_an_uninterrupted_run(ws: Any, mnist_dir: Path) -> None:
    """Through the supervisor: a real `python -m jobs.cnn` process, SIGTERM mid-epoch, `resume`, same curve."""
    import time

    from core.runrec import read_record
    from jobs import supervisor

    values = {"data_dir": str(mnist_dir), "epochs": 2, "limit_train": 4000, "limit_test": 300, "batch_size": 32,
              "cpu_threads": 1}  # 113 steps per epoch
    rec, _ = supervisor.start_job(ws, "cnn", values, gpu="cpu")
    run = ws.run(rec.id)

    def wait_for(cond, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, run.stdout.read_text()[-2000:]
            time.sleep(0.05)

    wait_for(lambda: (read_record(run.job_json).progress.get("step") or 0) >= 30)
    supervisor.stop(ws, rec.id, wait=True)
    assert read_record(run.job_json).state == "stopped"
    stopped_at = load_checkpoint(run.latest, kind="cnn")["step"]
    assert 30 <= stopped_at < 226
    supervisor.resume(ws, rec.id)
    wait_for(lambda: read_record(run.job_json).state in ("finished", "failed"))
    assert read_record(run.job_json).state == "finished", run.stdout.read_text()[-2000:]
    ref = run_train(ws, "cnn-0099", values)
    rows = list(iter_rows(run.metrics))
    assert [r["event"] for r in rows if r.get("event") in ("started", "stopped", "resumed", "finished")] == \
        ["started", "stopped", "resumed", "finished"]
    assert _comparable(rows) == _comparable(_rows(ref))


def test_rgb_checkpoint_through_the_api(ws: Any, tmp_path: Path) -> None:
    """A CIFAR-format (RGB, 32x32) model: classify a grey image of another size, every explanation, viz."""
    import numpy as np

    from core.vision import api

    make_cifar_dataset(tmp_path / "data", per_batch=8)
    rt = run_train(ws, "cnn-0001", {"data_dir": str(tmp_path / "data"), "dataset": "cifar10", "epochs": 1,
                                    "batch_size": 16, "model": "lenet-demo"})
    clf = api.load_classifier(rt.paths.best)
    assert clf.input_shape == (3, 32, 32) and clf.samples is not None and clf.samples.shape == (8, 32, 32, 3)
    grey = np.random.default_rng(0).integers(0, 256, (50, 70), dtype=np.uint8)
    top = api.classify(clf, grey, top_k=10)
    assert len(top) == 10 and abs(sum(p for _, p in top) - 1) < 1e-4 and top[0][0] in clf.class_names
    for method in api.METHODS:
        heat = api.explain_map(clf, clf.samples[0], method, target="cat")
        assert heat.shape == (32, 32) and 0 <= heat.min() and heat.max() <= 1
    assert api.layer_names(clf) == ["conv1", "conv2"] and api.default_layer(clf) == "conv2"
    assert api.filters_image(clf).shape[2] == 3  # RGB filter tiles
    assert api.maxact_image(clf, "conv1", 2, steps=5).shape == (32, 32, 3)
    assert clf.display(grey).shape == (32, 32, 3)
