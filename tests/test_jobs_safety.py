"""Issue 13: jobs and their files under faults, with real job processes (kind ``demo``): a creation that fails,
a disk that fills up, a resume without latest.pt, rm of leftovers, symlinks and dependencies, edited records,
pauses and attempts in the elapsed time."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import NcanvasError
from core.runrec import JobRecord, read_record, write_record
from jobs import supervisor as sv
from jobs.locks import is_locked
from tests.conftest import subprocess_env
from tests.jobhelpers import last_step, wait_for

SLOW = {"epochs": 1, "steps_per_epoch": 100_000, "step_sleep": 0.01}


def state(ws, jid: str) -> str:
    return sv.job_status(ws, jid).state


def cli(ws, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``ncanvas --home WS ...`` in a subprocess; ``ws`` is a Workspace or its root folder."""
    home = ws if isinstance(ws, Path) else ws.root
    return subprocess.run([sys.executable, "-m", "tui.cli", "--home", str(home), *args], capture_output=True,
                          text=True, env=subprocess_env(), cwd=cwd, timeout=300)


def record(ws, job_id: str, **over) -> JobRecord:
    run = ws.run(job_id).make()
    rec = JobRecord(id=job_id, kind="demo", **{"state": "stopped", "attempts": 1, **over})
    write_record(run.job_json, rec)
    return rec


@pytest.fixture
def tmpfs(tmp_path: Path):
    """A 4 MiB tmpfs to fill up (root only; skipped where mounting is not allowed)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill_up(path: Path) -> None:
    """Fill the file system holding ``path``; a running job may already have filled it (then nothing to do)."""
    try:
        with open(path, "wb") as f:
            while True:
                f.write(b"\0" * 16384)
                f.flush()
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise


# ============================================================================================ item 3


def test_a_creation_that_fails_leaves_nothing_and_says_disk_full(ws, monkeypatch) -> None:
    def full(path, rec) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(sv, "write_record", full)
    with pytest.raises(NcanvasError, match=r"^disk full: [\d,]+ bytes free on .*/logs; job x was not created$"):
        sv.start_job(ws, "demo", {}, job_id="x")
    assert not ws.run("x").log_dir.exists() and not ws.run("x").ckpt_dir.exists()
    monkeypatch.undo()
    rec, _ = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 3}, job_id="x")  # the name is free again
    assert rec.id == "x"


def test_train_on_a_full_disk_is_one_line_and_leaves_nothing(tmpfs: Path) -> None:
    (tmpfs / "ws" / "logs").mkdir(parents=True)
    fill_up(tmpfs / "filler")
    out = cli(tmpfs / "ws", "train", "demo", "--name", "x")
    assert out.returncode == 1 and out.stderr.startswith("ncanvas: disk full: "), out.stderr
    assert out.stderr.count("\n") == 1 and "job x was not created" in out.stderr
    assert sorted(p.name for p in (tmpfs / "ws" / "logs").iterdir()) == []
    assert not (tmpfs / "ws" / "checkpoints" / "x").exists()


def test_rm_removes_a_leftover_folder_of_a_valid_id(ws) -> None:
    run = ws.run("x")
    run.log_dir.mkdir(parents=True)
    (run.log_dir / "control.lock").write_text("")
    run.ckpt_dir.mkdir(parents=True)
    with pytest.raises(NcanvasError, match="without job.json is in the way.*ncanvas jobs rm x removes it"):
        sv.start_job(ws, "demo", {}, job_id="x")
    assert sv.remove(ws, "x") == "removed x: its folders (no job.json)"
    assert not run.log_dir.exists() and not run.ckpt_dir.exists()
    with pytest.raises(NcanvasError, match="no job 'x'"):
        sv.remove(ws, "x")


# ============================================================================================ item 4


def test_a_disk_that_fills_up_mid_run_is_named_with_the_checkpoint_kept(tmpfs: Path) -> None:
    from core.paths import Workspace

    ws = Workspace(tmpfs / "ws").ensure()
    sv.start_job(ws, "demo", {"hidden": 2048, "steps_per_epoch": 100_000, "checkpoint_every": 5,
                              "step_sleep": 0.02}, job_id="x")
    run = ws.run("x")
    wait_for(run.latest.is_file, what="a first latest.pt")
    fill_up(tmpfs / "filler")
    wait_for(lambda: not is_locked(run.lock), what="the job to end")
    rec = read_record(run.job_json)
    assert rec.state == "failed", rec
    assert rec.error.startswith("disk full: ") and rec.error.endswith(" is kept"), rec.error
    assert f"bytes free on {run.ckpt_dir}; latest.pt from step " in rec.error
    assert rec.cause is not None and rec.cause["code"] == "disk_full" and rec.cause["summary"] == rec.error
    assert rec.cause["fix"] == "free space (old runs: ncanvas jobs rm <old job>), then: ncanvas jobs resume x"
    log = run.stdout.read_text()
    assert "Traceback" not in log and "enforce fail" not in log
    (tmpfs / "filler").unlink(missing_ok=True)
    step = int(rec.error.rsplit("step ", 1)[1].split()[0])
    from core.checkpoint import load_checkpoint

    assert load_checkpoint(run.latest)["step"] == step  # the message names the file that is really there


def test_resume_on_a_full_disk_says_so(ws, monkeypatch) -> None:
    record(ws, "x")

    def full(path, rec) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(sv, "write_record", full)
    with pytest.raises(NcanvasError, match=r"^disk full: [\d,]+ bytes free on .*; x was not resumed$"):
        sv.resume(ws, "x")


# ============================================================================================ item 5


def test_resume_without_latest_needs_from_scratch_and_archives_the_old_rows(ws) -> None:
    job, _ = sv.start_job(ws, "demo", SLOW)
    run = ws.run(job.id)
    wait_for(lambda: last_step(run.job_json) >= 5, what="steps")
    os.killpg(read_record(run.job_json).pgid, signal.SIGKILL)  # no latest.pt: it saves per epoch only
    wait_for(lambda: not is_locked(run.lock), what="death")
    assert not run.latest.exists()
    old_rows = run.metrics.read_text()
    from core.errors import NoCheckpointToResume

    with pytest.raises(NoCheckpointToResume, match="--from-scratch") as err:
        sv.resume(ws, job.id)
    assert err.value.job_id == job.id and run.metrics.read_text() == old_rows  # nothing touched
    msg = sv.resume(ws, job.id, from_scratch=True)
    assert msg == f"restarted {job.id} from scratch; the earlier attempt is kept as metrics.attempt-1.jsonl"
    assert (run.log_dir / "metrics.attempt-1.jsonl").read_text() == old_rows
    wait_for(lambda: last_step(run.job_json) >= 3, what="steps of the new attempt")
    sv.kill(ws, job.id, grace=1)
    steps = [r["step"] for r in map(json.loads, run.metrics.read_text().splitlines()) if "event" not in r]
    assert steps[0] == 1 and steps == sorted(set(steps))  # one series from step 1, no rows of the old attempt


def test_a_job_that_never_logged_a_step_resumes_without_asking(ws) -> None:
    record(ws, "x", state="stopped", config={"epochs": 1, "steps_per_epoch": 3})
    assert sv.resume(ws, "x") == "resumed x from scratch (it had not logged a step yet)"
    wait_for(lambda: state(ws, "x") == "finished", what="finished")


# ============================================================================================ items 6, 10, 13


def test_rm_of_symlinked_run_folders_removes_the_links_and_says_so(ws, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "logs-x").mkdir(parents=True)
    (outside / "ckpt-x").mkdir()
    write_record(outside / "logs-x" / "job.json", JobRecord(id="x", kind="demo", state="stopped"))
    (outside / "ckpt-x" / "latest.pt").write_text("keep me")
    ws.run("x").log_dir.symlink_to(outside / "logs-x")
    ws.run("x").ckpt_dir.symlink_to(outside / "ckpt-x")
    msg = sv.remove(ws, "x")
    assert msg.startswith("removed x (checkpoints/x was a link: removed it, left ") and "logs/x was a link" in msg
    assert not ws.run("x").log_dir.is_symlink() and not ws.run("x").ckpt_dir.is_symlink()
    assert (outside / "ckpt-x" / "latest.pt").read_text() == "keep me" and (outside / "logs-x" / "job.json").exists()


def test_an_edited_nproc_is_refused_before_any_launch(ws) -> None:
    record(ws, "x", nproc=1_000_000)
    with pytest.raises(NcanvasError, match=r"^x: job\.json: nproc 1000000: this machine has \d+ CPU cores"):
        sv.resume(ws, "x")
    assert not ws.run("x").stdout.exists() and read_record(ws.run("x").job_json).state == "stopped"
    record(ws, "y", config={"lr": float("nan")})
    with pytest.raises(NcanvasError, match=r"^y: job\.json: --lr must be a finite number"):
        sv.resume(ws, "y")


def test_unreadable_records_are_listed_with_their_reason(ws) -> None:
    for jid, text in (("bad-json", "{"), ("schema", json.dumps({"id": "schema", "kind": "demo", "schema": 99})),
                      ("mismatch", json.dumps({"id": "other", "kind": "demo"}))):
        ws.run(jid).make()
        ws.run(jid).job_json.write_text(text)
    record(ws, "good")
    assert [s.id for s in sv.list_status(ws)] == ["good"]  # the dashboard's default stays as it was
    rows = {s.id: s for s in sv.list_status(ws, unreadable=True)}
    assert {k: v.state for k, v in rows.items()} == {"good": "stopped", "bad-json": "unreadable",
                                                     "schema": "unreadable", "mismatch": "unreadable"}
    assert "schema 99" in rows["schema"].reason and "belongs to job 'other'" in rows["mismatch"].reason
    out = cli(ws, "jobs", "ls", "--json")
    listed = {j["id"]: j for j in json.loads(out.stdout)}
    assert listed["bad-json"]["state"] == "unreadable" and "cannot read" in listed["bad-json"]["reason"]
    table = cli(ws, "jobs", "ls").stdout
    rows = [ln.split() for ln in table.splitlines()]
    assert sorted(r[0] for r in rows if len(r) > 2 and r[2] == "unreadable") == ["bad-json", "mismatch", "schema"]
    assert "schema 99" in table


def test_json_outputs_are_strict_with_the_non_finite_values_named(ws) -> None:
    record(ws, "x", progress={"loss": float("nan"), "val_acc": float("inf"), "step": 3})

    def strict(token: str) -> None:
        raise ValueError(f"bare {token}")

    for args in (("jobs", "ls", "--json"), ("jobs", "show", "x", "--json")):
        out = cli(ws, *args)
        data = json.loads(out.stdout, parse_constant=strict)
        job = data[0] if isinstance(data, list) else data
        assert job["progress"]["loss"] is None
        assert job["nonfinite"] == {"progress.loss": "nan", "progress.val_acc": "inf"}


# ============================================================================================ item 17


def test_rm_names_the_jobs_waiting_and_a_forced_rm_fails_them_in_one_line(ws) -> None:
    dep, _ = sv.start_job(ws, "demo", SLOW, job_id="dep")
    waiter, _ = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 3}, after="dep", job_id="waiter")
    wait_for(lambda: "waiting for dep" in str(read_record(ws.run("waiter").job_json).progress.get("queued")),
             what="queued")
    sv.stop(ws, "dep", wait=True)
    with pytest.raises(NcanvasError, match=r"^waiter waits for dep \(--after\); remove it first, or use --force"):
        sv.remove(ws, "dep")
    assert sv.remove(ws, "dep", force=True) == "removed dep; waiter will fail (its --after job is gone)"
    wait_for(lambda: state(ws, "waiter") == "failed", what="the waiter to fail")
    rec = read_record(ws.run("waiter").job_json)
    assert rec.error == "dependency dep was removed; not starting"
    log = ws.run("waiter").stdout.read_text()
    assert "Traceback" not in log and "[ncanvas] error: dependency dep was removed; not starting" in log


def test_an_expected_job_error_is_one_line_in_the_log(ws, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    sv.start_job(ws, "cnn", {"dataset": "cifar10", "data_dir": str(tmp_path / "empty")}, gpu="cpu", job_id="c")
    wait_for(lambda: state(ws, "c") == "failed", timeout=120, what="the job to fail")
    log = ws.run("c").stdout.read_text()
    assert "Traceback" not in log and "[ncanvas] error: cifar10 train data not found" in log
    assert read_record(ws.run("c").job_json).error.startswith("cifar10 train data not found")


# ============================================================================================ items 19, 20


def test_elapsed_counts_every_attempt_and_leaves_paused_time_out(ws) -> None:
    job, _ = sv.start_job(ws, "demo", SLOW)
    run = ws.run(job.id)
    wait_for(lambda: last_step(run.job_json) > 5, what="steps")
    before = sv.job_status(ws, job.id).elapsed_s
    sv.pause(ws, job.id)
    time.sleep(2.0)
    paused = sv.job_status(ws, job.id)
    assert paused.eta_s is None  # its clock stands still
    assert paused.elapsed_s - before < 1.0 and paused.paused_s >= 1.9
    sv.cont(ws, job.id)
    assert sv.job_status(ws, job.id).paused_s == pytest.approx(paused.paused_s, abs=0.5)
    time.sleep(1.0)
    sv.stop(ws, job.id, wait=True)
    first = sv.job_status(ws, job.id)
    assert first.elapsed_s >= before + 0.9
    sv.resume(ws, job.id)
    wait_for(lambda: state(ws, job.id) == "running", what="running again")
    time.sleep(1.0)
    second = sv.job_status(ws, job.id)
    assert second.record.prior_s == pytest.approx(first.elapsed_s, abs=0.01)
    assert first.elapsed_s + 0.9 < second.elapsed_s < first.elapsed_s + 10  # both attempts, no pause
    show = cli(ws, "jobs", "show", job.id).stdout
    assert "(2 attempts; paused 2s, not counted)" in show
    sv.kill(ws, job.id, grace=1)


def test_a_queued_job_says_queued_not_started(ws) -> None:
    sv.start_job(ws, "demo", SLOW, job_id="dep")
    try:
        out = cli(ws, "train", "demo", "--after", "dep", "--name", "w")
        assert out.returncode == 0 and out.stdout.startswith("queued w (demo on cpu; starts when dep has finished)")
    finally:
        for jid in ("w", "dep"):
            sv.kill(ws, jid, grace=1)


def test_the_eta_after_a_pause_is_not_slowed_by_it(ws) -> None:
    """The job's own rate restarts on SIGCONT: a 100 s pause does not turn a 1 step/s job into a slow one."""
    from jobs.config import build_config
    from jobs.demo import DemoConfig
    from jobs.runtime import JobRuntime

    now = [1000.0]
    run = ws.run("demo-0001").make()
    rec = JobRecord(id="demo-0001", kind="demo", state="running")
    rt = JobRuntime(run, rec, build_config(DemoConfig, {}), get_time=lambda: now[0])
    for step in range(11):  # 1 step per second
        rt.progress(step=step, total_steps=100, force=True)
        now[0] += 1.0
    assert rt.record.progress["eta_s"] == pytest.approx(90.0)
    now[0] += 100.0  # paused
    rt.continued()
    for step in range(11, 14):
        rt.progress(step=step, total_steps=100, force=True)
        now[0] += 1.0
    assert rt.record.progress["eta_s"] == pytest.approx(87.0)
    rt.metrics.close()
