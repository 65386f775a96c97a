"""`ncanvas train` / `jobs` / `logs` through CliRunner, driving real demo processes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from jobs import supervisor as sv
from tests.jobhelpers import group_gone, last_step, wait_for
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
    assert "cause: RuntimeError: demo failure requested at step 2" in show.stdout and "  fix: " in show.stdout
    # the last log lines carry the end of the traceback for the user to read
    assert 'raise RuntimeError(f"demo failure requested at step {step}")' in show.stdout


def test_logs_follow_continues_exactly_where_the_backlog_stopped(ws) -> None:
    """`logs -f` on a live job drawing \\r progress frames: its output is exactly the end of the collapsed log, no
    line lost or shown twice, and a frame still being drawn when it started is shown once, when its line ends."""
    from core.logtext import last_lines

    # ~9 s of steps: a follow that starts late on a loaded runner still meets a live job
    res = cli(ws, "train", "demo", "--epochs", "1", "--steps-per-epoch", "3000", "--step-sleep", "0.003",
              "--print-every", "20")
    assert res.exit_code == 0, res.output
    run = ws.run("demo-0001")
    wait_for(lambda: "step 60/" in run.stdout.read_text(errors="replace"), what="steps")
    out = cli(ws, "logs", "demo-0001", "-f", "-n", "3")
    assert out.exit_code == 0, out.output
    got = out.stdout.splitlines()
    full = last_lines(run.stdout, 10_000)
    assert len(got) > 6 and "\r" not in out.stdout
    assert got == full[-len(got):]  # a contiguous tail: nothing lost, nothing twice, no half-drawn frame
    steps = [int(ln.split()[1].split("/")[0]) for ln in got if ln.startswith("step ")]
    assert steps == list(range(steps[0], 3001, 20))
    assert got[-1] == "[ncanvas] finished at step 3000"


def test_logs_follow_waits_for_a_job_still_starting(ws) -> None:
    """A job launched but not yet holding its lock is followed until it ends, not dropped as dead."""
    import threading
    import time

    from core.runrec import JobRecord, write_record
    from jobs.config import build_config, to_dict
    from jobs.demo import DemoConfig

    run = ws.run("demo-0001").make()
    rec = JobRecord(id="demo-0001", kind="demo", attempts=1, progress={"launched": time.time()},
                    config=to_dict(build_config(DemoConfig, {"epochs": 1, "steps_per_epoch": 20})))
    write_record(run.job_json, rec)
    launcher = threading.Timer(1.0, lambda: sv._launch(rec, run, resume=False))  # a slow start: 1 s to launch
    launcher.start()
    try:
        out = cli(ws, "logs", "demo-0001", "-f")
    finally:
        launcher.join()
    assert out.exit_code == 0, out.output
    assert "started on cpu" in out.stdout and out.stdout.rstrip().endswith("finished at step 20")


def test_foreground_ctrl_c_stops_then_kills_the_whole_group(ws) -> None:
    """First Ctrl-C: a graceful stop (the job is stuck in a 30 s step, so it stays stopping); second: the whole
    process group is killed, the child that ignores SIGTERM too, and the CLI reports it and exits."""
    import signal
    import subprocess
    import sys

    from core.runrec import read_record
    from tests.conftest import subprocess_env

    cmd = [sys.executable, "-c", "from tui.cli import main; main()", "--home", str(ws.root), "train", "demo", "--foreground",
           "--steps-per-epoch", "5", "--step-sleep", "30", "--spawn-child"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=subprocess_env(), text=True)
    try:
        run = ws.run("demo-0001")
        wait_for(lambda: run.job_json.exists() and sv.job_status(ws, "demo-0001").state == "running", what="running")
        pgid = read_record(run.job_json).pgid
        wait_for(lambda: len(sv._group_pids(pgid)) >= 2, what="the child process")
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: sv.job_status(ws, "demo-0001").state == "stopping", what="stopping")
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1 and "demo-0001 killed" in output, output
    assert not sv._group_pids(pgid)  # nothing alive; the dead are reaped by init a moment later
    wait_for(lambda: group_gone(pgid), timeout=10, what="an empty process group")


def test_jobs_ls_has_no_dead_all_option(ws) -> None:
    res = cli(ws, "jobs", "ls", "--all")
    assert res.exit_code == 2 and "No such option: --all" in res.output
