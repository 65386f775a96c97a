"""Typed job states (issue 15): one JobState enum, the outcome kept apart from the reason, and ``stopping`` derived
from one source (the stop request file), whoever sent the SIGTERM."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from core.paths import Workspace
from core.runrec import LIVE_STATES, TERMINAL_STATES, JobRecord, JobState, read_record, write_record
from jobs import supervisor as sv
from tests.jobhelpers import last_step, wait_for


def test_states_are_one_enum_that_reads_and_writes_as_plain_strings(tmp_path: Path) -> None:
    assert [s.value for s in JobState] == ["queued", "running", "paused", "stopping", "stopped", "finished",
                                          "failed", "killed"]
    assert f"{JobState.FAILED}" == "failed" and JobState.FAILED == "failed" and "failed" in TERMINAL_STATES
    assert all(s.live for s in LIVE_STATES) and not any(s.live for s in TERMINAL_STATES)
    path = tmp_path / "job.json"
    write_record(path, JobRecord(id="x", kind="demo", state=JobState.KILLED))
    assert json.loads(path.read_text())["state"] == "killed"
    rec = read_record(path)
    assert rec.state is JobState.KILLED and rec.state.terminal


def test_outcome_is_the_terminal_state_and_the_reason_stays_apart() -> None:
    rec = JobRecord(id="x", kind="demo", state=JobState.FAILED, error="boom", cause={"reason": "error", "code": "e"})
    st = sv.JobStatus(rec, JobState.FAILED, False, reason="boom", cause=rec.cause)
    assert st.outcome is JobState.FAILED and st.reason == "boom" and st.note == "error"
    assert sv.JobStatus(rec, JobState.RUNNING, True).outcome is None


@pytest.mark.slow
def test_a_sigterm_from_elsewhere_shows_stopping_and_the_record_never_says_so(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 100_000, "step_sleep": 3.0}, job_id="x")
    run = ws.run("x")
    wait_for(lambda: last_step(run.job_json) >= 1, what="a step")
    os.kill(read_record(run.job_json).pid, signal.SIGTERM)  # not `ncanvas jobs stop`: e.g. Slurm, or a user's kill
    wait_for(run.stop_request.exists, what="the job's own stop request")  # written by its handler, mid-sleep
    assert sv.job_status(ws, "x").state == "stopping"  # the rest of its 3 s step is left
    assert read_record(run.job_json).state == JobState.RUNNING  # derived, never stored
    wait_for(lambda: sv.job_status(ws, "x").state == JobState.STOPPED, what="stopped")
    sv.resume(ws, "x")
    assert not run.stop_request.exists()
    sv.kill(ws, "x", grace=1)
