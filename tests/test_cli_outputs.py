"""Issue 13: what the CLI writes where a user points it (FIFOs, devices, links, folders, stdout), on a tiny cnn
checkpoint made in the test (no dataset needed)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tui.cli import app

runner = CliRunner()


def make_cnn_checkpoint(path: Path, **over: Any) -> Path:
    """An untrained simplecnn checkpoint with the vision metadata the cnn job writes."""
    import torch

    from core.checkpoint import make_checkpoint, save_checkpoint
    from core.vision.models import build_model

    torch.manual_seed(0)
    model = build_model("simplecnn", 1, 10, 28)
    meta = {"dataset": "mnist", "in_channels": 1, "num_classes": 10, "image_size": 28, "mean": [0.1307],
            "std": [0.3081], "class_names": [str(i) for i in range(10)], "model": "simplecnn",
            "samples": torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "sample_labels": torch.tensor([1, 2])}
    ck = make_checkpoint(kind="cnn", arch="simplecnn", config={"model": "simplecnn"}, model=model.state_dict(),
                         extra={"vision": meta})
    ck.update(over)
    return save_checkpoint(ck, path)


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("cnn")
    Image.fromarray((np.arange(28 * 28) % 256).reshape(28, 28).astype(np.uint8)).save(root / "digit.png")
    return {"ckpt": make_cnn_checkpoint(root / "cnn.pt"), "image": root / "digit.png", "root": root}


def gradcam(cnn: dict[str, Path], tmp_path: Path, *extra: str) -> Any:
    return runner.invoke(app, ["--home", str(tmp_path / "ws"), "gradcam", str(cnn["image"]), "-c", str(cnn["ckpt"]),
                               "--width", "28", *extra])


def test_png_into_a_fifo_is_written_through(cnn: dict[str, Path], tmp_path: Path) -> None:
    fifo = tmp_path / "cam.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as f:
            got.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    res = gradcam(cnn, tmp_path, "--png", str(fifo))
    reader.join(10)
    assert res.exit_code == 0, res.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and got and got[0].startswith(b"\x89PNG")


def test_png_through_a_symlink_writes_its_target(cnn: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "target.png"
    target.write_bytes(b"old")
    (tmp_path / "link.png").symlink_to(target)
    res = gradcam(cnn, tmp_path, "--png", str(tmp_path / "link.png"))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "link.png").is_symlink() and target.read_bytes().startswith(b"\x89PNG")


def test_png_dash_is_the_png_alone_on_stdout(cnn: dict[str, Path], tmp_path: Path) -> None:
    res = gradcam(cnn, tmp_path, "--png", "-")
    assert res.exit_code == 0, res.output
    assert res.stdout_bytes.startswith(b"\x89PNG") and "predicted" in res.stderr
    assert not (tmp_path / "-").exists() and not Path("-").exists()


def test_export_json_into_a_folder_is_one_line(cnn: dict[str, Path], tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ck = ws / "checkpoints" / "cnn-0001"
    ck.mkdir(parents=True)
    (ck / "epoch_1.pt").write_bytes(cnn["ckpt"].read_bytes())
    (tmp_path / "out").mkdir()
    res = runner.invoke(app, ["--home", str(ws), "export-json", "cnn-0001", "-o", str(tmp_path / "out")])
    assert res.exit_code == 1 and res.stderr.strip() == f"ncanvas: {tmp_path / 'out'} is a folder; give a file name"


def test_checkpoint_paths_inside_the_workspace_work_from_any_folder(cnn: dict[str, Path], tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13.20: the README's `--checkpoint checkpoints/<id>` with NCANVAS_HOME set, run from another folder."""
    ws = tmp_path / "ws"
    (ws / "checkpoints" / "cnn-0001").mkdir(parents=True)
    (ws / "checkpoints" / "cnn-0001" / "best_model.pt").write_bytes(cnn["ckpt"].read_bytes())
    monkeypatch.setenv("NCANVAS_HOME", str(ws))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for value in ("checkpoints/cnn-0001", "checkpoints/cnn-0001/best_model.pt", "cnn-0001"):
        res = runner.invoke(app, ["classify", str(cnn["image"]), "-c", value, "--json"])
        assert res.exit_code == 0, (value, res.output)
