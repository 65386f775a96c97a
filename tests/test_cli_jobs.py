"""`ncanvas train` / `jobs` / `logs` through CliRunner, driving real demo processes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from jobs import supervisor as sv
from tests.jobhelpers import last_step, wait_for
from tui.cli import app

runner = CliRunner()


def cli(ws, *args: str):
    return runner.invoke(app, ["--home", str(ws.root), *args])


def test_train_control_and_logs_round_trip(ws) -> None:
    res = cli(ws, "train", "demo", "--epochs", "1", "--steps-per-epoch", "100000", "--step-sleep", "0.005",
              "--name", "demo-try", "--json")
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)
    assert rec["id"] == "demo-try" and rec["config"]["step_sleep"] == 0.005 and rec["gpu"] == "cpu"
    run = ws.run("demo-try")
    wait_for(lambda: last_step(run.job_json) > 3, what="steps")
    listing = json.loads(cli(ws, "jobs", "ls", "--json").stdout)
    assert [(j["id"], j["state"]) for j in listing] == [("demo-try", "running")]
    assert cli(ws, "jobs", "pause", "demo-try").stdout.startswith("paused demo-try")
    assert "paused" in cli(ws, "jobs", "ls").stdout
    assert cli(ws, "jobs", "cont", "demo-try").stdout.strip() == "continued demo-try"
    res = cli(ws, "jobs", "stop", "demo-try")
    assert res.exit_code == 0 and res.stdout.strip() == "stopped demo-try"
    res = cli(ws, "jobs", "stop", "demo-try")
    assert res.exit_code == 1 and res.stderr.strip() == "ncanvas: demo-try is stopped; nothing to stop"
    res = cli(ws, "logs", "demo-try")
    assert "stopped at step" in res.stdout
    assert cli(ws, "jobs", "resume", "demo-try").stdout.startswith("resumed demo-try from latest.pt")
    res = cli(ws, "jobs", "rm", "demo-try")
    assert res.exit_code == 1 and "stop it first or use --force" in res.stderr
    assert cli(ws, "jobs", "rm", "demo-try", "--force").stdout.strip() == "removed demo-try"
    assert json.loads(cli(ws, "jobs", "ls", "--json").stdout) == []


def test_foreground_runs_attached_and_logs_follow(ws) -> None:
    res = cli(ws, "train", "demo", "--epochs", "2", "--steps-per-epoch", "20", "--foreground")
    assert res.exit_code == 0, res.output
    assert "demo-0001 finished" in res.stdout
    assert sv.job_status(ws, "demo-0001").state == "finished"
    res = cli(ws, "logs", "demo-0001", "-f")  # the job has ended: follow prints what there is and returns
    assert res.exit_code == 0 and "finished at step 40" in res.stdout


def test_failed_job_shows_reason(ws) -> None:
    res = cli(ws, "train", "demo", "--fail-at-step", "2", "--foreground")
    assert res.exit_code == 1 and "failed: RuntimeError: demo failure requested at step 2" in res.stdout
    show = cli(ws, "jobs", "show", "demo-0001")
    assert "reason: RuntimeError: demo failure requested at step 2" in show.stdout
    assert "Traceback" in show.stdout  # the last log lines carry the traceback for the user to read
