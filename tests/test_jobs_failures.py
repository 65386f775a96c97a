"""Failure triage with real job processes (issue 16): each failure a CPU can produce ends with its cause, a fix and
the evidence in job.json, ``jobs ls``/``jobs show`` (and their ``--json``), never as a bare exit code."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core.paths import Workspace
from core.runrec import read_record
from jobs import supervisor as sv
from jobs.locks import is_locked
from tests.conftest import subprocess_env
from tests.jobhelpers import last_step, wait_for

SLOW = {"epochs": 1, "steps_per_epoch": 100_000, "step_sleep": 0.02, "checkpoint_every": 5}


@pytest.fixture
def ws(tmp_path: Path):
    ws = Workspace(tmp_path / "ws").ensure()
    yield ws
    for st in sv.list_status(ws):
        if st.alive:
            sv.kill(ws, st.id, grace=0.5)


def cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui.cli", "--home", str(ws.root), *args], capture_output=True,
                          text=True, env=subprocess_env(), timeout=300)


def ended(ws: Workspace, job_id: str, timeout: float = 120.0) -> None:
    run = ws.run(job_id)
    wait_for(lambda: run.job_json.is_file() and read_record(run.job_json).pid is not None, timeout=timeout,
             what="the job's process")
    wait_for(lambda: not is_locked(run.lock) and sv.job_status(ws, job_id).state not in ("queued", "running"),
             timeout=timeout, what="the job to end")


def shown(ws: Workspace, job_id: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """(``jobs show --json``, ``jobs show``, the ``jobs ls --json`` row) of a job."""
    info = json.loads(cli(ws, "jobs", "show", job_id, "--json").stdout)
    text = cli(ws, "jobs", "show", job_id).stdout
    (row,) = [r for r in json.loads(cli(ws, "jobs", "ls", "--json").stdout) if r["id"] == job_id]
    return info, text, row


def test_a_diverging_run_fails_within_steps_with_its_cause_and_fix(ws: Workspace) -> None:
    out = cli(ws, "train", "demo", "--lr", "10", "--epochs", "50", "--checkpoint-every", "1", "--name", "div")
    assert out.returncode == 0, out.stderr
    ended(ws, "div")
    rec = read_record(ws.run("div").job_json)
    assert rec.state == "failed" and rec.cause is not None and rec.cause["code"] == "diverged"
    assert rec.progress["step"] <= 20, "stopped at the first non-finite step, not after 50 epochs"
    info, text, row = shown(ws, "div")
    assert row["reason"] == "diverged (NaN/inf)" and "lower --lr" in row["fix"]
    assert info["cause"].startswith("training diverged: non-finite") and info["cause_code"] == "diverged"
    assert "  cause: training diverged" in text and "  fix: " in text and "lower --lr" in text
    listing = cli(ws, "jobs", "ls").stdout
    assert "diverged (NaN/inf)" in listing  # the NOTE column
    log = ws.run("div").stdout.read_text()
    assert "[ncanvas] fix: " in log and "Traceback" not in log

    import torch

    from core.checkpoint import load_checkpoint

    for p in ws.run("div").ckpt_dir.glob("*.pt"):  # never a NaN weight as latest or best
        state = load_checkpoint(p)["model"]
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()), p.name


def test_sigkill_from_outside_is_named_as_such(ws: Workspace) -> None:
    sv.start_job(ws, "demo", SLOW, job_id="k")
    run = ws.run("k")
    wait_for(lambda: read_record(run.job_json).progress.get("saved_step"), what="a heartbeat after a latest.pt")
    os.killpg(read_record(run.job_json).pgid, signal.SIGKILL)
    ended(ws, "k")
    info, text, row = shown(ws, "k")
    assert row["state"] == "failed" and row["cause_code"] == "killed" and row["reason"] == "killed (SIGKILL?)"
    assert "killed from outside ncanvas" in info["cause"] and "latest.pt from step" in info["cause"]
    assert info["fix"] == "ncanvas jobs resume k"
    assert "  cause: the process was killed from outside ncanvas" in text


def test_a_segfault_leaves_the_fatal_error_line_and_is_named(ws: Workspace) -> None:
    sv.start_job(ws, "demo", SLOW, job_id="seg")
    run = ws.run("seg")
    wait_for(lambda: last_step(run.job_json) >= 3, what="steps")
    os.kill(read_record(run.job_json).pid, signal.SIGSEGV)
    ended(ws, "seg")
    assert "Fatal Python error: Segmentation fault" in run.stdout.read_text()  # faulthandler in every job
    info, _, _ = shown(ws, "seg")
    assert info["cause_code"] == "segfault" and info["reason"] == "crashed (segmentation fault)"
    assert info["cause"].startswith("the Python interpreter crashed: Fatal Python error: Segmentation fault")


def test_out_of_host_memory_names_the_batch_and_a_smaller_one(ws: Workspace) -> None:
    sv.start_job(ws, "demo", dict(SLOW, hidden=4096, batch_size=4096, steps_per_epoch=500), job_id="mem")
    run = ws.run("mem")
    wait_for(lambda: last_step(run.job_json) >= 3, what="steps")
    pid = read_record(run.job_json).pid
    vm_kb = next(int(ln.split()[1]) for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
                 if ln.startswith("VmSize:"))
    resource.prlimit(pid, resource.RLIMIT_AS, (vm_kb * 1024, vm_kb * 1024))  # no room for one more batch
    ended(ws, "mem")
    info, text, row = shown(ws, "mem")
    assert row["cause_code"] == "host_oom" and row["reason"] == "host out of memory"
    assert info["cause"].startswith("out of host memory allocating ") and info["cause"].endswith("at batch 4096")
    assert info["fix"].startswith("--batch-size 2048")
    assert any("MiB resident of a" in line for line in info["evidence"]), info["evidence"]
    assert info["where"].startswith("jobs/") and f"  raised at: {info['where']}" in text  # forward or backward


def test_missing_data_is_one_sentence_with_where_to_put_it(ws: Workspace, tmp_path: Path) -> None:
    empty = tmp_path / "empty-data"
    empty.mkdir()
    out = cli(ws, "train", "cnn", "--data-dir", str(empty), "--name", "nodata")
    assert out.returncode == 0, out.stderr
    ended(ws, "nodata")
    info, _, row = shown(ws, "nodata")
    assert row["cause_code"] == "data_missing" and row["reason"].startswith("data missing")
    assert "data not found: put " in info["cause"] and str(empty) in info["cause"]
    assert info["fix"].startswith("Put ")
    assert "Traceback" not in ws.run("nodata").stdout.read_text()


def test_a_queued_job_whose_dependency_failed_says_so(ws: Workspace) -> None:
    sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 3, "fail_at_step": 2}, job_id="a")
    sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 3}, job_id="b", after="a")
    ended(ws, "a")
    wait_for(lambda: sv.job_status(ws, "b").state == "failed", what="b refused")
    b = sv.job_status(ws, "b")
    assert b.cause is not None and b.cause["code"] == "job_error" and "dependency a ended failed" in b.cause["summary"]
    assert b.cause["fix"] == "correct what the message says, then: ncanvas jobs resume b"


def test_a_resumed_job_forgets_the_last_attempts_cause(ws: Workspace) -> None:
    sv.start_job(ws, "demo", SLOW, job_id="r")
    run = ws.run("r")
    wait_for(lambda: last_step(run.job_json) >= 6, what="steps")
    os.killpg(read_record(run.job_json).pgid, signal.SIGKILL)
    ended(ws, "r")
    sv.resume(ws, "r")
    wait_for(lambda: sv.job_status(ws, "r").state == "running", what="running again")
    time.sleep(0.3)
    st = sv.job_status(ws, "r")
    assert st.cause is None and st.record.cause is None and st.note == ""


def test_a_vanished_job_is_diagnosed_once_not_at_every_listing(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.runrec import JobRecord, write_record

    run = ws.run("v").make()
    write_record(run.job_json, JobRecord(id="v", kind="demo", state="running", attempts=1, pid=1 << 22, started=1.0))
    run.stdout.write_text("step 1\n")
    calls = []
    real = sv._diagnose_vanished
    monkeypatch.setattr(sv, "_diagnose_vanished", lambda r, rec: calls.append(1) or real(r, rec))
    first = [sv.job_status(ws, "v").cause for _ in range(5)]
    assert len(calls) == 1 and first[0] == first[-1] and first[0]["code"] == "killed"
    with open(run.stdout, "a") as f:  # a changed log is new evidence
        f.write("Fatal Python error: Segmentation fault\n")
    assert sv.job_status(ws, "v").cause["code"] == "segfault" and len(calls) == 2
