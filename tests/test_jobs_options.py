"""Issue 13: job options refused before anything is created (NaN, overflow, GPUs, ids, paths), in every kind's
config at once (jobs/config.py), and relative paths made absolute where the job is submitted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.errors import BadJobId, NcanvasError
from jobs import supervisor as sv
from jobs.config import build_config, option_specs
from jobs.kinds import KINDS, kind_config

FLOATS = [(kind, s.name) for kind in KINDS for s in option_specs(kind_config(kind)) if s.type is float]
INT_LIMIT = 2**31 - 1  # jobs.config.INT_LIMIT
INTS = [(kind, s.name) for kind in KINDS for s in option_specs(kind_config(kind)) if s.type is int and s.max is None]


@pytest.mark.parametrize(("kind", "name"), FLOATS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), "nan"])
def test_non_finite_floats_are_refused_for_every_kind(kind: str, name: str, bad: object) -> None:
    flag = "--" + name.replace("_", "-")
    with pytest.raises(NcanvasError, match=f"^{flag} must be"):
        build_config(kind_config(kind), {name: bad})


@pytest.mark.parametrize(("kind", "name"), INTS)
def test_ints_without_their_own_bound_stop_at_int32(kind: str, name: str) -> None:
    flag = "--" + name.replace("_", "-")
    with pytest.raises(NcanvasError, match=f"^{flag} must be at most {INT_LIMIT}; got 1180591620717411303424$"):
        build_config(kind_config(kind), {name: 1180591620717411303424})
    with pytest.raises(NcanvasError, match=f"^{flag} must be at most"):
        build_config(kind_config(kind), {name: 1e30})  # the dashboard's form sends what was typed


def test_nan_options_are_refused_before_anything_is_created(ws) -> None:
    for kind, values in [("cnn", {"lr": float("nan")}), ("cnn", {"val_fraction": float("nan")}),
                         ("cnn", {"weight_decay": float("nan")}), ("demo", {"step_sleep": float("nan")}),
                         ("demo", {"seed": 1180591620717411303424})]:
        with pytest.raises(NcanvasError):
            sv.start_job(ws, kind, values)
    assert list(ws.logs.iterdir()) == []


def test_gpu_index_without_nvml_is_checked_against_the_driver(monkeypatch, tmp_path) -> None:
    """`--gpu 7` on a machine without GPU 7, or without any GPU, is refused naming what is there."""
    import core.gpu

    monkeypatch.setattr(core.gpu, "gpu_stats", lambda: [])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(core.gpu, "DRIVER_GPUS", tmp_path / "no-driver")
    with pytest.raises(NcanvasError, match=r"^--gpu 7: no GPU here \(no NVIDIA driver found\); use --gpu cpu"):
        core.gpu.resolve_gpu("7")
    assert core.gpu.resolve_gpu("auto") == "cpu" and core.gpu.resolve_gpu("cpu") == "cpu"
    gpus = tmp_path / "gpus"
    for bus in ("0000:17:00.0", "0000:65:00.0"):
        (gpus / bus).mkdir(parents=True)
    monkeypatch.setattr(core.gpu, "DRIVER_GPUS", gpus)
    with pytest.raises(NcanvasError, match=r"^--gpu 7: only 2 GPU\(s\) visible \(use 0 to 1, auto or cpu\)$"):
        core.gpu.resolve_gpu("7")
    assert core.gpu.resolve_gpu("1") == "1"


def test_gpu_7_is_refused_before_anything_is_created(ws, monkeypatch, tmp_path) -> None:
    import core.gpu

    monkeypatch.setattr(core.gpu, "gpu_stats", lambda: [])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(core.gpu, "DRIVER_GPUS", tmp_path / "no-driver")
    with pytest.raises(NcanvasError, match="no GPU here"):
        sv.start_job(ws, "cnn", {}, gpu="7")
    assert list(ws.logs.iterdir()) == []


def test_more_processes_than_cores_are_refused(ws) -> None:
    cores = os.cpu_count() or 1
    with pytest.raises(NcanvasError, match=f"^--gpus {cores + 1}: this machine has {cores} CPU cores"):
        sv.start_job(ws, "demo", {}, gpus=cores + 1, gpu="cpu")
    assert list(ws.logs.iterdir()) == []


@pytest.mark.parametrize("n", [65, 100, 300])
def test_a_too_long_id_names_the_length_limit(n: int) -> None:
    from core.paths import validate_job_id

    with pytest.raises(BadJobId, match=f"\\({n} characters\\): at most 64 characters$"):
        validate_job_id("a" * n)
    with pytest.raises(BadJobId, match="use lowercase letters"):
        validate_job_id("A" * n)
    assert validate_job_id("a" * 64) == "a" * 64


# ============================================================================================ paths (item 2)


def test_path_options_are_marked_in_every_kind_that_reads_files() -> None:
    marked = {(kind, s.name): s.path for kind in KINDS for s in option_specs(kind_config(kind)) if s.path}
    assert marked == {("cnn", "data_dir"): True, ("llm", "data"): True, ("gpt2", "data"): True,
                      ("gpt2", "base"): "or-name", ("artcnn", "data"): True, ("artcnn", "image_root"): True}


def test_relative_paths_become_absolute_against_the_callers_folder(tmp_path: Path) -> None:
    from jobs.artcnn import ArtCNNConfig
    from jobs.config import absolute_paths
    from jobs.gpt2 import GPT2Config

    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "labels.csv").write_text("path,artist,style,genre\n")
    got = absolute_paths(ArtCNNConfig, {"data": "art/labels.csv", "image_root": "./art", "epochs": 2}, tmp_path)
    assert got == {"data": str(tmp_path / "art" / "labels.csv"), "image_root": str(tmp_path / "art"), "epochs": 2}
    assert absolute_paths(GPT2Config, {"base": "gpt2"}, tmp_path) == {"base": "gpt2"}  # a hub name stays a name
    with pytest.raises(NcanvasError, match=r"^--base \./mine: no such file or folder \("):
        absolute_paths(GPT2Config, {"base": "./mine"}, tmp_path)
    with pytest.raises(NcanvasError, match=f"^--data-dir data/mnist: no such file or folder \\({tmp_path}/data/mnist"):
        absolute_paths(kind_config("cnn"), {"data_dir": "data/mnist"}, tmp_path)


def test_a_missing_data_dir_is_refused_before_anything_is_created(ws, tmp_path: Path) -> None:
    with pytest.raises(NcanvasError, match="no such file or folder"):
        sv.start_job(ws, "cnn", {"data_dir": "nowhere/mnist"}, cwd=tmp_path)
    assert list(ws.logs.iterdir()) == []


def test_train_cnn_with_a_relative_data_dir_from_another_folder(tmp_path: Path) -> None:
    """`cd ~/proj && ncanvas train cnn --data-dir data/mnist` trains (the job runs in logs/<id>), and job.json
    records the absolute path."""
    import subprocess
    import sys

    from tests.conftest import subprocess_env
    from tests.vision_helpers import make_idx_dataset

    proj = tmp_path / "proj"
    make_idx_dataset(proj / "data" / "mnist", n_train=64, n_test=32)
    ws = tmp_path / "ws"
    out = subprocess.run([sys.executable, "-m", "tui.cli", "--home", str(ws), "train", "cnn", "--data-dir",
                          "data/mnist", "--epochs", "1", "--batch-size", "32", "--gpu", "cpu", "--name", "c",
                          "--foreground"], cwd=proj, capture_output=True, text=True, env=subprocess_env(),
                         timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rec = json.loads((ws / "logs" / "c" / "job.json").read_text())
    assert rec["state"] == "finished" and rec["config"]["data_dir"] == str(proj / "data" / "mnist")
