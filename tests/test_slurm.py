"""The Slurm backend against a real single-node Slurm (slurmctld + slurmd + munge, started by .ci/slurm-up.sh).

Every job here is the ``demo`` kind on the CPU; ``step_sleep`` makes it slow enough to act on."""

from __future__ import annotations

import subprocess
import time

import pytest
from typer.testing import CliRunner

from core.checkpoint import load_checkpoint
from core.errors import NcanvasError
from core.runrec import read_record
from jobs import supervisor as sv
from jobs.backends.slurm import job_ids_in_squeue
from tests.jobhelpers import effective_rows, last_step, metric_rows, wait_for
from tests.slurmhelpers import events, wait_event

pytestmark = pytest.mark.slurm
SLOW = {"epochs": 2, "steps_per_epoch": 150, "batch_size": 16, "step_sleep": 0.04}


def state(ws, jid: str) -> str:
    return sv.job_status(ws, jid).state


def wait_state(ws, jid: str, *states: str, timeout: float = 120) -> str:
    return wait_for(lambda: state(ws, jid) if state(ws, jid) in states else None, timeout, 0.2,
                    what=f"{jid} {states} (now {state(ws, jid)}: {sv.job_status(ws, jid).reason})")


def submit(ws, cfg: dict, **kw) -> str:
    rec, proc = sv.start_job(ws, "demo", cfg, backend="slurm", slurm=kw.pop("slurm", {}), **kw)
    assert proc is None and rec.backend == "slurm" and rec.slurm["job_id"]
    return rec.id


def slurm_id(ws, jid: str) -> str:
    return str(read_record(ws.run(jid).job_json).slurm["job_id"])


def test_cli_submit_shows_in_squeue_and_ncanvas_and_finishes(sws) -> None:
    from tui.cli import app

    res = CliRunner().invoke(app, ["--home", str(sws.root), "train", "demo", "--backend", "slurm", "--epochs", "1",
                                   "--steps-per-epoch", "60", "--step-sleep", "0.03", "--name", "demo-cli"])
    assert res.exit_code == 0, res.output
    assert "as Slurm job" in res.output and "shared filesystem: " in res.output
    sid = slurm_id(sws, "demo-cli")
    assert sid in job_ids_in_squeue()
    script = (sws.run("demo-cli").log_dir / "sbatch.sh").read_text()
    assert "#SBATCH --signal=USR1@120" in script and "srun " in script and "-m jobs.demo --run-dir" in script
    wait_state(sws, "demo-cli", "running")
    ls = CliRunner().invoke(app, ["--home", str(sws.root), "jobs", "ls"])
    assert "SLURM" in ls.output and f"#{sid}" in ls.output
    show = CliRunner().invoke(app, ["--home", str(sws.root), "jobs", "show", "demo-cli"])
    assert f"slurm: job {sid}" in show.output and "RUNNING" in show.output
    wait_state(sws, "demo-cli", "finished")
    assert last_step(sws.run("demo-cli").job_json) == 60  # the same run folder a local job writes
    assert (sws.run("demo-cli").ckpt_dir / "best_model.pt").is_file()


def test_every_kind_trains_under_slurm_into_the_same_run_folder(sws, tmp_path) -> None:
    """Each kind through the CLI (`ncanvas train KIND --backend slurm`), on tiny data, all queued at once."""
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from core.explain.dataset import generate
    from core.llm.tokenizer import train_bpe
    from jobs.kinds import KINDS
    from tests.vision_helpers import make_art_set, make_idx_dataset
    from tui.cli import app

    make_idx_dataset(tmp_path / "mnist", n_train=80, n_test=20)
    art = make_art_set(tmp_path / "art", n=24, size=16)
    tok = train_bpe((r["prompt"] + "\n" + r["explanation"] for r in generate(120, 5)), 400)
    base = tmp_path / "tiny-gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=tok.vocab_size, n_positions=512, n_embd=32, n_layer=1, n_head=2,
                               bos_token_id=tok.eos_id, eos_token_id=tok.eos_id)).save_pretrained(base)
    PreTrainedTokenizerFast(tokenizer_object=tok.tok, eos_token="<|endoftext|>").save_pretrained(base)
    lm = ["--n-pairs", "120", "--batch-size", "16", "--eval-max", "16", "--warmup-steps", "2"]
    args = {
        "demo": ["--steps-per-epoch", "20"],
        "cnn": ["--data-dir", str(tmp_path / "mnist"), "--batch-size", "16"],
        "artcnn": ["--data", str(art), "--batch-size", "8", "--image-size", "16", "--backbone", "resnet18"],
        "llm": [*lm, "--n-layer", "1", "--d-model", "32", "--n-head", "2", "--n-kv-head", "1", "--d-ff", "64",
                "--bpe-vocab", "400"],
        "gpt2": [*lm, "--base", str(base)],
    }
    assert set(args) == set(KINDS)  # every kind
    for kind, extra in args.items():
        res = CliRunner().invoke(app, ["--home", str(sws.root), "train", kind, "--backend", "slurm", "--epochs", "1",
                                       "--name", f"{kind}-slurm", *extra])
        assert res.exit_code == 0 and "as Slurm job" in res.output, (kind, res.output)
        assert f"-m jobs.{kind} --run-dir" in (sws.run(f"{kind}-slurm").log_dir / "sbatch.sh").read_text()
    for kind in args:
        jid = f"{kind}-slurm"
        wait_state(sws, jid, "finished", "failed", timeout=300)
        assert state(sws, jid) == "finished", (sv.job_status(sws, jid).reason, sws.run(jid).stdout.read_text()[-1500:])
        assert [r for r in metric_rows(sws.run(jid).metrics) if r["split"] == "train"]
        assert (sws.run(jid).ckpt_dir / "best_model.pt").is_file()


def test_a_submission_that_fails_after_sbatch_leaves_nothing_in_squeue_or_the_workspace(sws, monkeypatch) -> None:
    from jobs.backends import slurm as backend

    real, held = backend._checked, []

    def release_fails(argv: list[str]) -> str:
        if argv[:2] == ["scontrol", "release"]:
            held.append(argv[2])
            raise NcanvasError("scontrol: Access/permission denied")
        return real(argv)

    monkeypatch.setattr(backend, "_checked", release_fails)
    with pytest.raises(NcanvasError, match="permission denied"):
        sv.start_job(sws, "demo", SLOW, backend="slurm", job_id="demo-held")
    assert not sws.run("demo-held").log_dir.exists() and not sws.run("demo-held").ckpt_dir.exists()
    assert held and held[-1] not in job_ids_in_squeue()  # the held job was cancelled, not left behind
    # a resume whose submission fails leaves the job as it was: stopped, resumable again
    monkeypatch.setattr(backend, "_checked", real)
    jid = submit(sws, SLOW, slurm={"args": ["--begin=now+600"]})
    sv.stop(sws, jid)
    monkeypatch.setattr(backend, "_checked", release_fails)
    with pytest.raises(NcanvasError, match="permission denied"):
        sv.resume(sws, jid)
    rec = read_record(sws.run(jid).job_json)
    assert state(sws, jid) == "stopped" and rec.attempts == 1 and rec.slurm["history"] == []
    assert len(held) == 2 and held[-1] not in job_ids_in_squeue()
    monkeypatch.setattr(backend, "_checked", real)
    assert "as Slurm job" in sv.resume(sws, jid)


def test_pending_reason_then_stop_cancels_before_it_starts(sws) -> None:
    jid = submit(sws, SLOW, slurm={"args": ["--begin=now+600"]})
    st = wait_for(lambda: (s := sv.job_status(sws, jid)).slurm and s.slurm["reason"] == "BeginTime" and s, 30,
                  what="pending")
    assert st.state == "queued" and st.alive and "Slurm: BeginTime" in st.reason
    assert st.slurm["reason"] == "BeginTime"
    with pytest.raises(NcanvasError, match="queued in Slurm .*nothing to pause"):
        sv.pause(sws, jid)
    assert "cancelled before it started" in sv.stop(sws, jid)
    assert state(sws, jid) == "stopped"
    assert slurm_id(sws, jid) not in job_ids_in_squeue()
    # it never logged a step: a resume starts it from scratch without asking (a new submission, pending again)
    assert sv.resume(sws, jid).startswith(f"resumed {jid} from scratch (it had not logged a step yet) as Slurm job")
    assert state(sws, jid) == "queued" and slurm_id(sws, jid) in job_ids_in_squeue()


def test_resume_without_latest_pt_asks_and_from_scratch_archives_the_old_attempt(sws) -> None:
    from core.errors import NoCheckpointToResume

    jid = submit(sws, dict(SLOW, steps_per_epoch=1000))
    wait_for(lambda: last_step(sws.run(jid).job_json) >= 5, 120, what="training")
    sv.kill(sws, jid)  # scancel's SIGTERM: the trainer saved latest.pt on its way out...
    sws.run(jid).latest.unlink()  # ...which is lost here, as after a SIGKILL before the first checkpoint
    with pytest.raises(NoCheckpointToResume, match="--from-scratch"):
        sv.resume(sws, jid)
    msg = sv.resume(sws, jid, from_scratch=True)
    assert msg.startswith(f"restarted {jid} from scratch") and "metrics.attempt-1.jsonl" in msg
    assert (sws.run(jid).log_dir / "metrics.attempt-1.jsonl").is_file()
    wait_for(lambda: metric_rows(sws.run(jid).metrics), 120, what="rows of the new attempt")
    assert metric_rows(sws.run(jid).metrics)[0]["step"] == 1  # a new curve, not the old one continued
    rec = read_record(sws.run(jid).job_json)
    assert rec.attempts == 2 and rec.prior_s == 0.0 and not rec.resume


def test_pause_cont_stop_resume_continue_the_same_curve(sws) -> None:
    cfg = dict(SLOW, epochs=1, steps_per_epoch=200)
    ref, _ = sv.start_job(sws, "demo", dict(cfg, step_sleep=0.0))  # local, uninterrupted: the reference curve
    jid = submit(sws, cfg)
    wait_for(lambda: last_step(sws.run(jid).job_json) >= 20, 120, what="training")
    msg = sv.pause(sws, jid)
    assert "allocation stays held" in msg
    st = sv.job_status(sws, jid)
    assert st.state == "paused" and st.slurm["state"] == "STOPPED"
    at = last_step(sws.run(jid).job_json)
    time.sleep(1.5)
    assert last_step(sws.run(jid).job_json) == at  # frozen
    sv.cont(sws, jid)
    st = sv.job_status(sws, jid)
    assert st.paused_s >= 1.5 and len(st.pauses) == 1  # paused time is not training time, as locally
    wait_for(lambda: last_step(sws.run(jid).job_json) > at + 3, 60, what="progress after cont")
    sv.pause(sws, jid)
    assert sv.stop(sws, jid, wait=True, timeout=60) == f"stopped {jid}"  # a paused job is continued to stop
    assert state(sws, jid) == "stopped"
    stopped_at = load_checkpoint(sws.run(jid).latest)["step"]
    assert 0 < stopped_at < 200
    first = slurm_id(sws, jid)
    assert "as Slurm job" in sv.resume(sws, jid)
    rec = read_record(sws.run(jid).job_json)
    assert rec.slurm["history"] == [first] and slurm_id(sws, jid) != first and rec.attempts == 2
    assert rec.prior_s > 0 and sv.job_status(sws, jid).elapsed_s >= rec.prior_s  # elapsed adds up the attempts
    wait_state(sws, jid, "finished")
    assert events(sws, jid, "resumed")[-1]["step"] == stopped_at  # the global step continues
    wait_state(sws, ref.id, "finished")
    ours = effective_rows(sws.run(jid).metrics)
    assert [r["step"] for r in ours] == sorted(r["step"] for r in ours)
    assert ours == metric_rows(sws.run(ref.id).metrics)  # the same curve as the uninterrupted local run


def test_kill_leaves_nothing_in_squeue_and_a_raw_scancel_reads_as_killed(sws) -> None:
    a, b = submit(sws, SLOW), submit(sws, SLOW)
    wait_state(sws, a, "running")
    wait_state(sws, b, "running")
    assert "killed" in sv.kill(sws, a)
    assert state(sws, a) == "killed" and slurm_id(sws, a) not in job_ids_in_squeue()
    subprocess.run(["scancel", slurm_id(sws, b)], check=True)  # by hand, outside ncanvas
    st = wait_for(lambda: (s := sv.job_status(sws, b)).state == "killed" and s, 60, what="cancelled")
    assert "Slurm: CANCELLED" in st.reason and st.cause["code"] == "slurm_cancelled"  # jobs.triage's cause
    rec = read_record(sws.run(b).job_json)
    assert "Slurm: CANCELLED" in (rec.error or "") and rec.cause["code"] == "slurm_cancelled"  # survives MinJobAge
    show = CliRunner().invoke(__import__("tui.cli", fromlist=["app"]).app,
                              ["--home", str(sws.root), "jobs", "show", b]).output
    assert "cause: cancelled in Slurm (scancel) outside ncanvas" in show and f"fix: ncanvas jobs resume {b}" in show


def test_rm_force_cancels_a_live_slurm_job_first(sws) -> None:
    jid = submit(sws, SLOW)
    wait_state(sws, jid, "running")
    sid = slurm_id(sws, jid)
    with pytest.raises(NcanvasError, match="use --force"):
        sv.remove(sws, jid)
    sv.remove(sws, jid, force=True)
    assert not sws.run(jid).log_dir.exists() and sid not in job_ids_in_squeue()


def test_walltime_warning_checkpoints_requeues_and_resumes_by_itself(sws) -> None:
    # --time 2 warns at half of it (60 s before the limit); Slurm sends a warning up to 30 s early (it checks time
    # limits every 30 s), so USR1 reaches the trainer 30 to 60 s into each run: time to start even on a busy machine
    jid = submit(sws, dict(SLOW, epochs=1, steps_per_epoch=100_000, step_sleep=0.02), slurm={"time": "2"})
    script = (sws.run(jid).log_dir / "sbatch.sh").read_text()
    assert "#SBATCH --signal=USR1@60" in script and "#SBATCH --time=2" in script
    sid = slurm_id(sws, jid)
    req = wait_event(sws, jid, "requeued", timeout=150)[0]
    assert load_checkpoint(sws.run(jid).latest)["step"] == req["step"]  # saved at the warning
    st = wait_for(lambda: (s := sv.job_status(sws, jid)).slurm and s.slurm["state"] == "PENDING" and s, 30,
                  what="requeued")
    assert st.state == "queued" and "requeued after the walltime warning (1/10)" in st.reason
    assert "Slurm: BeginTime" in st.reason  # a requeued job waits a little before it may start again
    resumed = wait_event(sws, jid, "resumed", timeout=120)[0]
    assert resumed["step"] == req["step"]  # the same global step: no work lost, none redone
    rec = read_record(sws.run(jid).job_json)
    assert rec.requeues == 1 and slurm_id(sws, jid) == sid  # the same Slurm job, run again
    wait_state(sws, jid, "running")
    assert "requeueing Slurm job" in sws.run(jid).stdout.read_text()
    sv.kill(sws, jid)


def test_preemption_or_an_outside_requeue_checkpoints_and_resumes_by_itself(sws) -> None:
    # what PreemptMode=REQUEUE does to a job: SIGCONT + SIGTERM to its steps, KillWait, SIGKILL, back to the queue
    jid = submit(sws, dict(SLOW, epochs=1, steps_per_epoch=100_000, step_sleep=0.02))
    wait_for(lambda: last_step(sws.run(jid).job_json) >= 10, 120, what="training")
    subprocess.run(["scontrol", "requeue", slurm_id(sws, jid)], check=True)
    req = wait_event(sws, jid, "requeued", timeout=60)[0]
    assert req["by"] == "slurm" and load_checkpoint(sws.run(jid).latest)["step"] == req["step"]
    st = sv.job_status(sws, jid)
    assert st.state == "queued" and st.alive and "requeued by Slurm" in st.reason
    assert read_record(sws.run(jid).job_json).requeues == 0  # Slurm's requeues are not bounded by ncanvas
    resumed = wait_event(sws, jid, "resumed", timeout=120)[0]
    assert resumed["step"] == req["step"]  # no work lost
    sv.kill(sws, jid)


def test_after_waits_through_afterok_and_follows_a_resumed_dependency(sws) -> None:
    a = submit(sws, dict(SLOW, epochs=1, steps_per_epoch=120))
    b = submit(sws, {"epochs": 1, "steps_per_epoch": 10}, after=a)
    st = wait_for(lambda: (s := sv.job_status(sws, b)).slurm and s.slurm["reason"] == "Dependency" and s, 30,
                  what="dependency")
    assert st.state == "queued" and "--after job" in st.reason
    wait_state(sws, a, "running")
    sv.stop(sws, a, wait=True)  # stopped, not finished: b must not start
    st = wait_for(lambda: (s := sv.job_status(sws, b)).slurm["reason"] == "DependencyNeverSatisfied" and s, 30,
                  what="never satisfied")
    assert st.state == "queued"
    assert f"{b} now wait for it" in sv.resume(sws, a)
    wait_state(sws, a, "finished")
    wait_state(sws, b, "finished")
    assert read_record(sws.run(b).job_json).started >= read_record(sws.run(a).job_json).ended - 1


def test_ddp_two_tasks_on_cpu_gloo(sws) -> None:
    jid = submit(sws, {"epochs": 1, "steps_per_epoch": 40, "batch_size": 8}, gpu="cpu", gpus=2)
    script = (sws.run(jid).log_dir / "sbatch.sh").read_text()
    assert "#SBATCH --ntasks-per-node=2" in script and "MASTER_ADDR=" in script and "RANK=$SLURM_PROCID" in script
    wait_state(sws, jid, "finished", timeout=180)
    rows = metric_rows(sws.run(jid).metrics)
    assert max(r["step"] for r in rows if r["split"] == "train") == 20  # two ranks: half the steps per epoch
    assert read_record(sws.run(jid).job_json).nproc == 2
