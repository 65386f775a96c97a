"""Issue 13.18: inference takes the cores that running jobs leave free (one policy, core/threads.py), used by the
CLI's inference commands (and --threads) and by the dashboard's panes (tui/inference.py)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from core.runrec import JobRecord, write_record
from core.threads import inference_threads, use_inference_threads, workspace_near


@pytest.fixture(autouse=True)
def _restore_threads(monkeypatch: pytest.MonkeyPatch):
    import torch

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def job(ws, job_id: str, state: str = "running", pid: int | None = None, **over) -> None:
    run = ws.run(job_id).make()
    write_record(run.job_json, JobRecord(id=job_id, kind="cnn", state=state, pid=pid or os.getpid(), **over))


def test_running_jobs_keep_their_cores(ws) -> None:
    assert inference_threads(ws=ws, cores=8) == 8  # nothing runs: torch's default, every core
    job(ws, "cnn-0001", config={"cpu_threads": 2})
    assert inference_threads(ws=ws, cores=8) == 6
    job(ws, "llm-0001", gpu="0,1", nproc=2)  # a GPU job keeps a core per rank feeding its GPU
    assert inference_threads(ws=ws, cores=8) == 4
    job(ws, "demo-0001", nproc=3)  # gloo ranks: one core each
    assert inference_threads(ws=ws, cores=8) == 1
    job(ws, "cnn-0002")  # a CPU job with torch's default threads takes every core: at least one is left to us
    assert inference_threads(ws=ws, cores=8) == 1
    assert inference_threads(3, ws=ws, cores=8) == 3  # --threads wins


def test_queued_paused_and_ended_jobs_use_no_core(ws) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        os.kill(sleeper.pid, signal.SIGSTOP)
        job(ws, "cnn-0001", pid=sleeper.pid)  # paused
        job(ws, "cnn-0002", state="queued")
        job(ws, "cnn-0003", state="finished")
        job(ws, "cnn-0004", pid=2**22 + 12345)  # crashed: its process is gone
        assert inference_threads(ws=ws, cores=4) == 4
    finally:
        sleeper.kill()
        sleeper.wait()


def test_omp_num_threads_set_by_the_user_wins(ws, monkeypatch: pytest.MonkeyPatch) -> None:
    job(ws, "cnn-0001")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert inference_threads(ws=ws, cores=8) == 3


def test_the_policy_reaches_torch_and_finds_the_checkpoints_workspace(ws) -> None:
    import torch

    ck = ws.run("cnn-0001").make().ckpt_dir / "best_model.pt"
    ck.write_bytes(b"")
    assert workspace_near(ck) == ws and workspace_near(Path("/nowhere/x.pt")) is None
    job(ws, "cnn-0002")  # takes every core
    assert use_inference_threads(near=ck) == 1 and torch.get_num_threads() == 1


def test_cli_inference_spares_a_running_job_and_takes_threads(ws, tmp_path: Path) -> None:
    import torch
    from typer.testing import CliRunner

    from tests.test_cli_outputs import make_cnn_checkpoint
    from tui.cli import app

    ck = make_cnn_checkpoint(tmp_path / "cnn.pt")
    from PIL import Image

    Image.new("L", (28, 28)).save(tmp_path / "d.png")
    runner = CliRunner()
    torch.set_num_threads(2)
    job(ws, "cnn-0009")  # a CPU job with every core
    res = runner.invoke(app, ["--home", str(ws.root), "classify", str(tmp_path / "d.png"), "-c", str(ck)])
    assert res.exit_code == 0, res.output
    assert torch.get_num_threads() == 1
    res = runner.invoke(app, ["--home", str(ws.root), "classify", str(tmp_path / "d.png"), "-c", str(ck),
                              "--threads", "2"])
    assert res.exit_code == 0 and torch.get_num_threads() == 2


def test_dashboard_panes_spare_a_running_job(ws, tmp_path: Path) -> None:
    import torch
    from PIL import Image

    from tests.test_cli_outputs import make_cnn_checkpoint
    from tui import inference

    ck = make_cnn_checkpoint(ws.run("cnn-0001").make().ckpt_dir / "best_model.pt")
    Image.new("L", (28, 28)).save(tmp_path / "d.png")
    torch.set_num_threads(2)
    job(ws, "cnn-0002")
    inference.classify(str(ck), str(tmp_path / "d.png"))
    assert torch.get_num_threads() == 1
