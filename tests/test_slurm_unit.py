"""The Slurm backend without a Slurm: options, the batch script, the state rules, the requeue protocol of the
runtime, old records, and what a user sees when Slurm's commands are missing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from core.errors import NcanvasError
from core.runrec import JobRecord, read_record, write_record
from jobs.backends.slurm_opts import (
    ScriptPlan,
    SlurmOptions,
    parse_time,
    render_script,
    resolve,
    toml_defaults,
)
from jobs.backends.slurm_state import NO_ANSWER, Seen, decide
from tests.conftest import subprocess_env
from tests.jobhelpers import last_step, wait_for
from tui.cli import app

T0 = 1_000_000.0


def cli(ws, *args: str):
    return CliRunner().invoke(app, ["--home", str(ws.root), *args])


# ===================================================================================== records


def test_old_records_load_as_local_jobs_and_an_unknown_backend_is_one_clear_error(ws) -> None:
    run = ws.run("cnn-0001").make()
    old = JobRecord(id="cnn-0001", kind="cnn").to_json()
    for key in ("backend", "slurm", "requeues"):
        del old[key]  # as written before the Slurm backend
    run.job_json.write_text(json.dumps(old))
    rec = read_record(run.job_json)
    assert (rec.backend, rec.slurm, rec.requeues) == ("local", {}, 0)
    run.job_json.write_text(json.dumps(dict(old, backend="k8s")))
    with pytest.raises(NcanvasError, match="unknown backend 'k8s'"):
        read_record(run.job_json)


# ===================================================================================== options


@pytest.mark.parametrize(("text", "secs"), [("90", 5400), ("30:00", 1800), ("1:30:00", 5400), ("2-12", 216000),
                                            ("1-0:30", 88200), ("0-0:0:45", 45), ("1", 60)])
def test_slurm_time_formats(text: str, secs: int) -> None:
    assert parse_time(text) == secs


@pytest.mark.parametrize(("given", "msg"), [
    ({"time": "soon"}, "Slurm's formats"), ({"time": "0"}, "above zero"), ({"mem": "lots"}, "--mem 'lots'"),
    ({"partition": "gpu;rm -rf"}, "--partition"), ({"nodes": 0}, "--nodes must be"),
    ({"args": ["--output=x.log"]}, "ncanvas sets --output itself"), ({"args": ["-t", "5"]}, "use --time"),
    ({"args": ["constraint=a100"]}, "an sbatch option"), ({"args": ["--signal=USR2@60"]}, "warn_before"),
])
def test_bad_slurm_options_are_one_clear_error(given: dict, msg: str) -> None:
    with pytest.raises(NcanvasError, match=msg):
        resolve({}, given)


def test_warning_is_capped_at_half_the_time_limit() -> None:
    assert SlurmOptions().warn_s == 120
    assert SlurmOptions(time="4:00:00").warn_s == 120
    assert SlurmOptions(time="1").warn_s == 30  # a warning at the start would requeue a job that has not trained


def test_ncanvas_toml_slurm_table_gives_defaults_and_flags_win(ws) -> None:
    (ws.root / "ncanvas.toml").write_text('[workspace]\n[slurm]\npartition = "gpu"\ntime = "4:00:00"\n'
                                          'args = ["--constraint=a100"]\nsetup = ["module load cuda/12.4"]\n'
                                          'max_requeues = 3\n')
    o = resolve(toml_defaults(ws), {"time": "30", "args": ["--exclusive"]})
    assert (o.partition, o.time, o.max_requeues) == ("gpu", "30", 3)
    assert o.args == ["--constraint=a100", "--exclusive"] and o.setup == ["module load cuda/12.4"]
    (ws.root / "ncanvas.toml").write_text("[slurm]\npartitoin = 'gpu'\n")
    with pytest.raises(NcanvasError, match="unknown key.*partitoin"):
        toml_defaults(ws)


def _plan(ws, per_node: int = 1, gpu: bool = False, resume: bool = False) -> ScriptPlan:
    return ScriptPlan(job_id="llm-0001", kind="llm", module="jobs.llm", log_dir=ws.logs / "llm-0001",
                      code_root=ws.root / "code dir", python="/opt/venv/bin/python", per_node=per_node, gpu=gpu,
                      resume=resume)


def test_batch_script_is_valid_bash_and_says_what_it_does(ws, tmp_path) -> None:
    o = SlurmOptions(partition="gpu", time="4:00:00", nodes=2, gpus_per_node=4, mem="64G", account="lab",
                     args=["--constraint=a100"], setup=["module load cuda/12.4", "source /opt/venv/bin/activate"])
    text = render_script(o, _plan(ws, per_node=4, gpu=True))
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --partition=gpu", "#SBATCH --time=4:00:00", "#SBATCH --mem=64G", "#SBATCH --account=lab",
                 "#SBATCH --constraint=a100", "#SBATCH --requeue", "#SBATCH --signal=USR1@120",
                 "#SBATCH --open-mode=append", "module load cuda/12.4", "export NCANVAS_BACKEND=slurm",
                 "export NCANVAS_MAX_REQUEUES=10", "MASTER_ADDR=$(scontrol show hostnames", "RANK=$SLURM_PROCID",
                 "/opt/venv/bin/python -m jobs.llm --run-dir", "scontrol requeue"):
        assert line in text, line
    assert "CUDA_VISIBLE_DEVICES" not in text  # Slurm sets it for the GPUs it gives
    assert "PYTHONPATH='" in text  # a code root with a space is quoted
    path = tmp_path / "s.sh"
    path.write_text(text)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    one = render_script(SlurmOptions(), _plan(ws, resume=True))
    assert 'resume="--resume"' in one and "MASTER_ADDR" not in one and 'CUDA_VISIBLE_DEVICES=""' in one
    assert "srun /opt/venv/bin/python -m jobs.llm" in one


# ===================================================================================== state rules


def rec_of(state: str = "running", **kw) -> JobRecord:
    progress = kw.pop("progress", {"step": 40, "heartbeat": T0 - 2})
    return JobRecord(id="demo-0001", kind="demo", state=state, backend="slurm", slurm={"job_id": "7"},
                     progress=progress, **kw)


def seen(state: str, reason: str = "None", start: float | None = T0 - 100) -> Seen:
    return Seen("7", state, reason, "" if state == "PENDING" else "node01", start)


def test_pending_shows_slurms_reason() -> None:
    v = decide(rec_of("queued", progress={}), seen("PENDING", "Priority", None), now=T0)
    assert (v.state, v.alive) == ("queued", True) and v.reason.startswith("Slurm: Priority (jobs of higher")
    v = decide(rec_of("queued", progress={}), seen("PENDING", "DependencyNeverSatisfied", None), now=T0)
    assert "will never start" in v.reason


def test_running_paused_stopping_and_a_silent_job() -> None:
    assert decide(rec_of(), seen("RUNNING"), now=T0).state == "running"
    v = decide(rec_of(), seen("STOPPED"), now=T0)
    assert v.state == "paused" and "allocation stays held" in v.reason
    assert decide(rec_of(), seen("RUNNING"), stop_requested=True, now=T0).state == "stopping"
    v = decide(rec_of(progress={"step": 40, "heartbeat": T0 - 900}), seen("RUNNING"), now=T0)
    assert v.state == "running" and v.alive and "no heartbeat for 900s" in v.reason
    v = decide(rec_of("queued", progress={}), seen("RUNNING"), now=T0)
    assert v.state == "queued" and v.reason == "starting on node01"
    # a requeued run starting again while the record still holds the last run's final state
    v = decide(rec_of("stopped", ended=T0 - 500), seen("RUNNING", start=T0 - 10), now=T0)
    assert v.state == "queued" and v.alive


@pytest.mark.parametrize(("slurm_state", "code", "fix"), [
    ("TIMEOUT", "slurm_timeout", "a longer --time"), ("OUT_OF_MEMORY", "slurm_oom", "a larger --mem"),
    ("NODE_FAIL", "slurm_node_fail", "ncanvas jobs resume demo-0001"),
    ("PREEMPTED", "slurm_preempted", "ncanvas jobs resume demo-0001"),
    ("BOOT_FAIL", "slurm_boot_fail", "ncanvas jobs resume demo-0001"),
    ("DEADLINE", "slurm_deadline", "a later --deadline")])
def test_slurms_own_endings_are_failures_with_triages_cause(slurm_state: str, code: str, fix: str) -> None:
    for recorded in ("running", "stopped"):  # whatever the trainer managed to write (SIGTERM at the limit: stopped)
        v = decide(rec_of(recorded, progress={"step": 40, "saved_step": 30, "heartbeat": T0 - 2}), seen(slurm_state),
                   now=T0)
        assert (v.state, v.alive) == ("failed", False)
        assert v.cause["code"] == code and fix in v.cause["fix"]  # jobs.triage decides it, as for a local job
        assert f"Slurm state {slurm_state}" in v.cause["evidence"]
        assert v.reason == f"Slurm: {slurm_state}: {v.cause['summary']}"
        assert "latest.pt from step 30 is kept" in v.reason
        assert v.settle == ("failed", v.reason, v.cause)
    assert decide(rec_of("finished"), seen("TIMEOUT"), now=T0).state == "finished"


def test_cancelled_crashed_forgotten_and_no_answer() -> None:
    v = decide(rec_of("stopped"), seen("CANCELLED"), now=T0)  # scancel by hand: the trainer stopped on SIGTERM
    assert v.state == "killed" and v.reason.startswith("Slurm: CANCELLED: cancelled in Slurm (scancel) outside")
    assert v.cause["code"] == "slurm_cancelled" and v.settle == ("killed", v.reason, v.cause)
    assert decide(rec_of("killed", error="killed by user"), seen("CANCELLED"), now=T0).reason == "killed by user"
    assert decide(rec_of("stopped"), seen("CANCELLED"), stop_requested=True, now=T0).state == "stopped"
    v = decide(rec_of(), seen("COMPLETED"), now=T0, log_tail="Killed")
    assert v.state == "failed" and v.cause["code"] == "slurm_no_final_state"
    assert "without a final state" in v.reason and v.reason.endswith("last log: Killed")
    v = decide(rec_of(), seen("FAILED"), now=T0, log_tail="Fatal Python error: Segmentation fault")
    assert v.cause["code"] == "segfault"  # triage's own evidence wins over the generic Slurm ending
    assert decide(rec_of("stopped"), seen("FAILED"), now=T0).state == "stopped"  # exit 76: stopped, not failed
    v = decide(rec_of(), None, now=T0)
    assert v.state == "failed" and "no longer knows job 7" in v.reason and v.cause["code"] == "slurm_no_final_state"
    v = decide(rec_of(), NO_ANSWER, now=T0)
    assert (v.state, v.alive) == ("running", True) and "alive by its heartbeat" in v.reason
    v = decide(rec_of(), NO_ANSWER, now=T0 + 3600)
    assert v.state == "running" and "does not answer" in v.reason and v.settle is None
    v = decide(JobRecord(id="demo-0001", kind="demo", backend="slurm"), None, now=T0)
    assert (v.state, v.alive, v.reason) == ("queued", False, "being submitted to Slurm")


# ===================================================================================== the runtime's requeue


def _slurm_record(ws, jid: str, cfg: dict) -> None:
    from jobs.config import build_config, to_dict
    from jobs.kinds import kind_config

    cfg = to_dict(build_config(kind_config("demo"), cfg))
    write_record(ws.run(jid).make().job_json, JobRecord(id=jid, kind="demo", config=cfg, backend="slurm",
                                                        slurm={"job_id": "1"}, attempts=1))


def _trainer(ws, jid: str, resume: bool = False) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "jobs.demo", "--run-dir", str(ws.run(jid).log_dir), *(["--resume"] * resume)]
    env = subprocess_env(NCANVAS_BACKEND="slurm", NCANVAS_MAX_REQUEUES="1")
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_sigusr1_under_slurm_checkpoints_and_asks_for_a_requeue_at_most_max_times(ws) -> None:
    from core.checkpoint import load_checkpoint
    from core.metrics import iter_rows
    from jobs.runtime import EXIT_REQUEUE, EXIT_STOPPED_SLURM

    _slurm_record(ws, "demo-0001", {"epochs": 1, "steps_per_epoch": 100_000, "step_sleep": 0.005})
    run = ws.run("demo-0001")
    proc = _trainer(ws, "demo-0001")
    wait_for(lambda: last_step(run.job_json) > 5, what="steps")
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(60) == EXIT_REQUEUE
    rec = read_record(run.job_json)
    assert (rec.state, rec.requeues, rec.attempts, rec.resume) == ("queued", 1, 2, True)
    assert rec.prior_s > 0 and rec.started is None  # elapsed goes on from this run's training time
    step = load_checkpoint(run.latest)["step"]
    assert [r for r in iter_rows(run.metrics) if r.get("event") == "requeued"][0]["step"] == step
    proc = _trainer(ws, "demo-0001", resume=True)  # what the batch script runs after the requeue
    wait_for(lambda: last_step(run.job_json) > step + 3, what="steps after the requeue")
    proc.send_signal(signal.SIGUSR1)  # past NCANVAS_MAX_REQUEUES=1: an ordinary stop, with the reason
    assert proc.wait(60) == EXIT_STOPPED_SLURM
    rec = read_record(run.job_json)
    assert rec.state == "stopped" and "already requeued 1 time(s) (limit 1)" in rec.error
    resumed = [r for r in iter_rows(run.metrics) if r.get("event") == "resumed"]
    assert resumed[0]["step"] == step


# ===================================================================================== refusals before anything


def test_sbatch_missing_is_one_line_and_creates_nothing(ws, tmp_path, monkeypatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # a machine without Slurm's commands
    res = cli(ws, "train", "demo", "--backend", "slurm", "--epochs", "1")
    assert res.exit_code == 1
    assert res.stderr.strip().splitlines() == [
        "ncanvas: sbatch not found: Slurm's commands are not on this machine's PATH (run ncanvas on a login node of "
        "the cluster, `module load slurm`, or install the Slurm client); nothing was created"]
    assert not any(ws.logs.iterdir()) and not any(ws.checkpoints.iterdir())


@pytest.mark.parametrize(("args", "msg"), [
    (["--partition", "gpu"], "--partition is a Slurm option: add --backend slurm"),
    (["--backend", "slurm", "--gpus-per-node", "2"], "demo runs on the CPU; --gpus-per-node must be 0"),
    (["--backend", "slurm", "--slurm-arg=--output=/tmp/x"], "ncanvas sets --output itself"),
    (["--backend", "slurm", "--time", "an hour"], "--time 'an hour'"),
    (["--backend", "slurm", "--gpu", "0"], "Slurm picks the GPUs"),
    (["--backend", "slurm", "--foreground"], "follow a slurm job with: ncanvas logs ID -f"),
])
def test_bad_slurm_options_refused_before_anything_is_created(ws, args: list[str], msg: str) -> None:
    res = cli(ws, "train", "demo", *args)
    assert res.exit_code == 1 and msg in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not any(ws.logs.iterdir())


def test_a_kind_without_ddp_is_refused_many_ranks(ws) -> None:
    from jobs.backends.slurm import SLURM
    from jobs.kinds import KindSpec

    spec = KindSpec("x", "jobs.x", "", None, False, "samples_s", "samples/s", ddp=False)
    with pytest.raises(NcanvasError, match="does not train data-parallel; --nodes and --gpus-per-node must be 1"):
        SLURM._layout("x", spec, SlurmOptions(nodes=2), "auto", 1)
    assert SLURM._layout("x", spec, SlurmOptions(), "auto", 1) == (1, False)


# ===================================================================================== what the tables show


def test_tables_show_the_slurm_job_id_node_and_pending_reason() -> None:
    from jobs.supervisor import JobStatus
    from tui.fmt import fmt_slurm, slurm_line
    from tui.screens.details import render_details
    from tui.widgets.jobs_table import row_cells

    rec = rec_of("queued", progress={})
    rec.slurm["options"] = {"partition": "gpu", "max_requeues": 10}
    pending = JobStatus(rec, "queued", True, reason="Slurm: Priority",
                        slurm={"job_id": "7", "state": "PENDING", "reason": "Priority", "nodes": ""})
    cells = row_cells(pending, False)
    assert cells["gpu"] == "#7" and cells["eta"] == "Priori…"  # cut to the 7-wide ETA cell
    assert fmt_slurm(pending) == "#7 Priority"
    running = JobStatus(rec_of(), "running", True, slurm={"job_id": "7", "state": "RUNNING", "reason": "None",
                                                          "nodes": "node01"})
    assert row_cells(running, False)["gpu"] == "#7 node01"
    long = JobStatus(rec_of(), "running", True, slurm={"job_id": "123456", "state": "RUNNING", "reason": "None",
                                                       "nodes": "gpu-node-17"})
    assert row_cells(long, False)["gpu"] == "#123456 gp…"  # 11 wide
    assert slurm_line(pending).startswith("slurm: job 7   PENDING (Priority)   partition gpu   requeues 0/10")
    texts = [str(r) for r in render_details({"status": running, "checkpoints": [], "events": [], "log": []})]
    assert any("slurm: job 7   RUNNING   nodes node01" in t for t in texts)
    local = JobStatus(JobRecord(id="demo-0002", kind="demo"), "running", True)
    assert fmt_slurm(local) == "" and row_cells(local, False)["gpu"] == "cpu"


def test_shared_filesystem_check_says_what_it_could_check(tmp_path, monkeypatch) -> None:
    import socket
    import subprocess as sp

    from jobs.backends import slurm as backend

    def sinfo(nodes: str):
        return lambda argv, timeout=30: sp.CompletedProcess(argv, 0, stdout=nodes, stderr="")

    here = socket.gethostname().split(".")[0]
    monkeypatch.setattr(backend, "command", sinfo(f"{here}\n"))
    assert backend.shared_fs_check(tmp_path, None)[0] is True  # this machine is the whole partition
    monkeypatch.setattr(backend, "command", sinfo("gpu01\ngpu02\n"))
    monkeypatch.setattr(backend, "_fs_type", lambda p: "ext4")
    ok, why = backend.shared_fs_check(tmp_path, "gpu")
    assert ok is False and "on ext4, a filesystem of this machine only" in why and "gpu01, gpu02" in why
    monkeypatch.setattr(backend, "_fs_type", lambda p: "nfs4")
    assert backend.shared_fs_check(tmp_path, "gpu") == (True, f"workspace {tmp_path} is on nfs4, a network "
                                                              "filesystem: taken as shared with the nodes")
    monkeypatch.setattr(backend, "_fs_type", lambda p: "zfs")
    ok, why = backend.shared_fs_check(tmp_path, "gpu")
    assert ok is None and why.startswith(f"cannot check that workspace {tmp_path} (zfs) is shared")
