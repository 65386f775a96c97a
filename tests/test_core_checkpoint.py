import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from core.checkpoint import (
    load_checkpoint,
    load_model,
    load_model_state,
    make_checkpoint,
    save_checkpoint,
    save_model,
    set_rng_state,
    summary,
)
from core.errors import CheckpointError


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_round_trip_with_weights_only_and_rng_states(tmp_path: Path) -> None:
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.StepLR(opt, 2)
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    ck = make_checkpoint(kind="demo", arch="mlp", config={"lr": 1e-3, "layers": [3, 4, 2]}, model=model.state_dict(),
                         optimizer=opt.state_dict(), scheduler=sched.state_dict(), scaler=scaler.state_dict(),
                         step=7, epoch=1, batch_in_epoch=3, best_metric=0.5, metrics={"val_loss": 0.5})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    path = save_checkpoint(ck, tmp_path / "latest.pt")
    back = load_checkpoint(path, kind="demo")  # weights_only=True inside
    assert back["step"] == 7 and back["batch_in_epoch"] == 3 and back["config"]["layers"] == [3, 4, 2]
    for k, v in model.state_dict().items():
        assert torch.equal(back["model"][k], v)
    opt2 = torch.optim.AdamW(_model().parameters(), lr=1e-3)
    opt2.load_state_dict(back["optimizer"])
    set_rng_state(back["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    # the file loads with plain torch too, under the strictest setting
    assert torch.load(path, weights_only=True)["arch"] == "mlp"
    info = summary(back)
    assert info["parameters"] == sum(p.numel() for p in model.parameters()) and info["has_rng"]


def test_errors_are_one_line(tmp_path: Path) -> None:
    ck = make_checkpoint(kind="cnn", arch="simplecnn", config={}, model=_model().state_dict())
    good = save_checkpoint(ck, tmp_path / "good.pt")
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.pt").write_text("hello")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "plain.pt")
    cases = {
        "trunc.pt": "truncated or not a torch checkpoint",
        "text.pt": "truncated or not a torch checkpoint",
        "plain.pt": "not an ncanvas checkpoint",
        "missing.pt": "not found",
    }
    for name, msg in cases.items():
        with pytest.raises(CheckpointError, match=msg) as e:
            load_checkpoint(tmp_path / name)
        assert "\n" not in str(e.value)
    with pytest.raises(CheckpointError, match="is a 'cnn' checkpoint"):
        load_checkpoint(good, kind="llm")


class Evil:
    pass


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    torch.save({"format": "ncanvas-checkpoint", "obj": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="safe load refuses"):
        load_checkpoint(tmp_path / "evil.pt")


def test_architecture_mismatch_is_one_line(tmp_path: Path) -> None:
    ck = make_checkpoint(kind="cnn", arch="mlp", config={}, model=_model().state_dict())
    other = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(CheckpointError, match="does not fit this model") as e:
        load_model_state(other, ck, "x.pt")
    assert "\n" not in str(e.value)


def test_safetensors_export_handles_tied_weights(tmp_path: Path) -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.head = nn.Linear(4, 10, bias=False)
            self.head.weight = self.emb.weight

    m = Tied()
    path = save_model(m, tmp_path / "model.safetensors", metadata={"arch": "tied"})
    m2 = Tied()
    load_model(m2, path)
    assert torch.equal(m2.emb.weight, m.emb.weight) and m2.head.weight is m2.emb.weight


def test_safetensors_export_is_atomic_synced_and_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    """A unique temp name (never the fixed ``.model.safetensors.tmp`` two exports would share), fsynced before the
    rename, and on a failed write the old file stays and no temp file is left behind."""
    import os

    import safetensors.torch

    path = tmp_path / "model.safetensors"
    synced: list[str] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    save_model(_model(), path)
    assert any(".model.safetensors." in p and p.endswith(".tmp") for p in synced)  # the temp, before its rename
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
    saved = path.read_bytes()

    def torn(model, filename, metadata=None) -> None:
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_model", torn)
    with pytest.raises(OSError, match="disk full"):
        save_model(_model(), path)
    assert path.read_bytes() == saved and sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
