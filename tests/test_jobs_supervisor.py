"""The supervisor with real job processes (kind ``demo``, CPU)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from core.checkpoint import load_checkpoint
from core.errors import NcanvasError
from core.runrec import read_record
from jobs import supervisor as sv
from jobs.locks import is_locked
from tests.conftest import subprocess_env
from tests.jobhelpers import effective_rows, group_gone, last_step, metric_rows, wait_for

FAST = {"epochs": 2, "steps_per_epoch": 120, "batch_size": 16}


def state(ws, jid: str) -> str:
    return sv.job_status(ws, jid).state


def wait_state(ws, jid: str, *states: str, timeout: float = 60) -> str:
    return wait_for(lambda: state(ws, jid) if state(ws, jid) in states else None, timeout, what=f"{jid} {states}")


def test_stop_then_resume_is_bit_identical_to_uninterrupted(ws) -> None:
    cfg = dict(FAST, step_sleep=0.01)
    ref, _ = sv.start_job(ws, "demo", dict(cfg, step_sleep=0.0))
    job, _ = sv.start_job(ws, "demo", cfg)
    wait_for(lambda: last_step(ws.run(job.id).job_json) >= 25, what="progress")
    t0 = time.perf_counter()
    msg = sv.stop(ws, job.id, wait=True, timeout=30)
    stop_latency = time.perf_counter() - t0
    assert msg == f"stopped {job.id}"
    assert state(ws, job.id) == "stopped"
    stopped_at = load_checkpoint(ws.run(job.id).latest)["step"]
    assert 0 < stopped_at < 240
    assert "resumed" in sv.resume(ws, job.id)
    wait_state(ws, job.id, "finished")
    wait_state(ws, ref.id, "finished")
    ours, theirs = metric_rows(ws.run(job.id).metrics), metric_rows(ws.run(ref.id).metrics)
    assert [r["step"] for r in ours] == sorted(r["step"] for r in ours)  # monotonic: the series just continues
    assert ours == theirs  # bit for bit (floats serialised exactly)
    assert read_record(ws.run(job.id).job_json).attempts == 2
    print(f"stop latency {stop_latency:.2f}s")


def test_sigkill_at_random_moments_always_resumable(ws) -> None:
    rng = random.Random(1234)
    job, _ = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 100_000, "batch_size": 8,
                                       "checkpoint_every": 1, "step_sleep": 0.002})
    run = ws.run(job.id)
    prev_step, prev_pid, stale = 0, None, set()

    def temp_files() -> set:
        return set(run.ckpt_dir.glob(".*.tmp")) | set(run.log_dir.glob(".*.tmp"))

    for _trial in range(20):
        # this attempt's own process is up and has trained past the checkpoint it resumed from
        wait_for(lambda: read_record(run.job_json).pid not in (None, prev_pid) and run.latest.is_file()
                 and last_step(run.job_json) > prev_step + 1, what="steps")
        assert not stale & temp_files(), "temp files of a killed write are removed by the next attempt"
        time.sleep(rng.uniform(0.0, 0.3))
        rec = read_record(run.job_json)  # never torn
        prev_pid = rec.pid
        os.killpg(rec.pgid, signal.SIGKILL)
        wait_for(lambda: not is_locked(run.lock), what="death")
        st = sv.job_status(ws, job.id)
        assert st.state == "failed" and (st.cause or {}).get("code") == "killed", st.cause
        assert "killed from outside ncanvas" in (st.reason or "") and "latest.pt" in (st.reason or "")
        if _trial == 0:  # a crashed job's clock stops at its last sign of life
            time.sleep(0.2)
            assert sv.job_status(ws, job.id).elapsed_s == pytest.approx(st.elapsed_s, abs=1e-6)
        ck = load_checkpoint(run.latest, kind="demo")  # the last latest.pt always loads
        assert ck["step"] >= prev_step
        prev_step = ck["step"]
        stale = temp_files()
        sv.resume(ws, job.id)
    sv.kill(ws, job.id, grace=2)
    rows = effective_rows(run.metrics)
    steps = [r["step"] for r in rows]
    assert steps == list(range(1, len(steps) + 1))  # rewinds leave one monotonic series without gaps
    assert read_record(run.job_json).state == "killed"


def test_pause_freezes_progress_and_cont_restarts(ws) -> None:
    job, _ = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 100_000, "step_sleep": 0.005})
    run = ws.run(job.id)
    wait_for(lambda: last_step(run.job_json) > 5, what="steps")
    assert sv.pause(ws, job.id).startswith("paused")
    assert state(ws, job.id) == "paused"
    time.sleep(0.3)
    frozen = run.metrics.stat().st_size
    time.sleep(1.0)
    assert run.metrics.stat().st_size == frozen
    with pytest.raises(NcanvasError, match="already paused"):
        sv.pause(ws, job.id)
    sv.cont(ws, job.id)
    wait_for(lambda: run.metrics.stat().st_size > frozen, what="progress after cont")
    assert state(ws, job.id) == "running"
    pgid = read_record(run.job_json).pgid
    assert sv.kill(ws, job.id, grace=1) == f"killed {job.id}"
    assert state(ws, job.id) == "killed"
    assert sv._group_pids(pgid) == set()  # no orphans left in the process group
    with pytest.raises(NcanvasError, match="is killed; nothing to stop"):
        sv.stop(ws, job.id)


def test_job_survives_the_death_of_its_starter(ws) -> None:
    code = ("import sys, time\nfrom core.paths import Workspace\nfrom jobs import supervisor as sv\n"
            "rec, _ = sv.start_job(Workspace(sys.argv[1]), 'demo', {'epochs': 1, 'steps_per_epoch': 100000, "
            "'step_sleep': 0.005})\nprint(rec.id, flush=True)\ntime.sleep(60)\n")
    starter = subprocess.Popen([sys.executable, "-c", code, str(ws.root)], stdout=subprocess.PIPE, text=True,
                               env=subprocess_env())
    assert starter.stdout is not None
    jid = starter.stdout.readline().strip()
    starter.send_signal(signal.SIGKILL)
    starter.wait()
    run = ws.run(jid)
    wait_for(lambda: last_step(run.job_json) > 0, what="first steps")
    size = run.metrics.stat().st_size
    wait_for(lambda: run.metrics.stat().st_size > size, what="metrics after the starter died")
    assert state(ws, jid) == "running"
    sv.kill(ws, jid, grace=1)


def test_two_concurrent_resumes_start_exactly_one_process(ws) -> None:
    job, _ = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 100_000, "step_sleep": 0.005})
    run = ws.run(job.id)
    wait_for(lambda: last_step(run.job_json) > 3, what="steps")
    sv.stop(ws, job.id, wait=True)
    results: list[str] = []
    barrier = threading.Barrier(2)

    def go() -> None:
        barrier.wait()
        try:
            results.append(sv.resume(ws, job.id))
        except NcanvasError as e:
            results.append(f"error: {e}")

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.split()[0] for r in results) == ["error:", "resumed"], results
    assert any("nothing to resume" in r for r in results)
    wait_for(lambda: "resumed at step" in run.stdout.read_text(), what="resumed process")
    time.sleep(0.5)
    log = run.stdout.read_text()
    assert log.count("resumed at step") == 1 and "already running" not in log
    sv.kill(ws, job.id, grace=1)


def test_failed_job_records_reason_and_wrong_state_messages(ws) -> None:
    job, _ = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 50, "fail_at_step": 3})
    wait_state(ws, job.id, "failed")
    st = sv.job_status(ws, job.id)
    assert "demo failure requested at step 3" in (st.record.error or "")
    assert st.record.exit_code == 1
    with pytest.raises(NcanvasError, match="is failed; nothing to pause"):
        sv.pause(ws, job.id)
    with pytest.raises(NcanvasError, match="is failed; nothing to stop"):
        sv.stop(ws, job.id)
    assert sv.remove(ws, job.id) == f"removed {job.id}"
    assert not ws.run(job.id).log_dir.exists()


def test_a_job_that_wrote_its_final_state_is_not_signalled_while_it_exits(ws) -> None:
    from core.runrec import JobRecord, write_record
    from jobs.locks import exclusive

    stand_in = subprocess.Popen(["sleep", "30"], start_new_session=True)  # a signal must not reach the test
    try:
        run = ws.run("demo-0007").make()
        write_record(run.job_json, JobRecord(id="demo-0007", kind="demo", state="failed", attempts=1,
                                             pid=stand_in.pid, pgid=stand_in.pid))
        with exclusive(run.lock):  # its process still holds the run lock for the moment it takes to exit
            for verb in (sv.pause, sv.stop):
                with pytest.raises(NcanvasError, match="^demo-0007 is failed; nothing to"):
                    verb(ws, "demo-0007")
        assert stand_in.poll() is None and not sv._proc_stopped(stand_in.pid), "no signal sent"
        # rm (and resume) give the exiting process a moment to let go of its lock instead of refusing it
        held = threading.Event()

        def exiting() -> None:
            with exclusive(run.lock):
                held.set()
                time.sleep(0.5)

        t = threading.Thread(target=exiting)
        t.start()
        held.wait(5)
        assert sv.remove(ws, "demo-0007") == "removed demo-0007"
        t.join()
    finally:
        stand_in.kill()
        stand_in.wait()


def test_after_queues_until_dependency_finishes(ws) -> None:
    first, _ = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 60, "step_sleep": 0.01})
    second, _ = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 5}, after=first.id)
    wait_for(lambda: state(ws, second.id) == "queued" and "waiting for" in
             str(read_record(ws.run(second.id).job_json).progress.get("queued")), what="queued")
    with pytest.raises(NcanvasError, match="stop it first"):
        sv.remove(ws, second.id)
    wait_state(ws, first.id, "finished")
    wait_state(ws, second.id, "finished")
    assert read_record(ws.run(second.id).job_json).started >= read_record(ws.run(first.id).job_json).ended - 0.01


def test_bad_input_creates_nothing(ws) -> None:
    with pytest.raises(NcanvasError, match="unknown job kind"):
        sv.start_job(ws, "nope", {})
    with pytest.raises(NcanvasError, match="unknown option"):
        sv.start_job(ws, "demo", {"epoch": 3})
    with pytest.raises(NcanvasError, match="expects int"):
        sv.start_job(ws, "demo", {"epochs": "many"})
    with pytest.raises(NcanvasError, match="--gpu must be"):
        sv.resolve_gpu("first")
    with pytest.raises(NcanvasError, match="--gpu must be"):  # also for a kind that never uses a GPU
        sv.start_job(ws, "demo", {}, gpu="first")
    with pytest.raises(NcanvasError, match="no job 'nope'"):
        sv.resume(ws, "nope")
    assert list(ws.logs.iterdir()) == []  # not even a lock file


def test_gpu_auto_picks_the_most_free_memory(monkeypatch) -> None:
    import core.gpu
    from core.gpu import GpuStat

    stats = [GpuStat(0, "A", 90.0, 70_000.0, 80_000.0), GpuStat(1, "B", 5.0, 2_000.0, 80_000.0),
             GpuStat(2, "C", 50.0, 40_000.0, 80_000.0)]
    monkeypatch.setattr(core.gpu, "gpu_stats", lambda: stats)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # all three visible, whatever the runner sets
    assert sv.resolve_gpu("auto") == "1" and sv.resolve_gpu("auto", gpus=2) == "1,2"
    assert sv.resolve_gpu(" 2 ") == "2" and sv.resolve_gpu("CPU") == "cpu"
    with pytest.raises(NcanvasError, match="only 3 GPU"):
        sv.resolve_gpu("3")
    unknown = [GpuStat(i, "X", None, None, None) for i in (4, 5)]  # NVML without memory figures
    monkeypatch.setattr(core.gpu, "gpu_stats", lambda: unknown)
    assert sv.resolve_gpu("auto") == "4"
    monkeypatch.setattr(core.gpu, "gpu_stats", lambda: [])
    assert sv.resolve_gpu("auto") == "cpu"


def test_second_stop_kills_a_job_stuck_in_its_step(ws) -> None:
    job, _ = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 5, "step_sleep": 30})
    wait_state(ws, job.id, "running")
    assert "stopping" in sv.stop(ws, job.id)
    assert state(ws, job.id) == "stopping"  # at once, though the trainer only notices after its 30 s step
    t0 = time.monotonic()
    assert "second stop" in sv.stop(ws, job.id)
    assert state(ws, job.id) == "killed" and time.monotonic() - t0 < 20
    assert not sv._group_pids(read_record(ws.run(job.id).job_json).pgid)


def test_foreground_job_has_its_own_process_group(ws) -> None:
    """pause/stop/kill signal the job's group: a --foreground job must not share its caller's (the shell's)."""
    job, proc = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 400, "step_sleep": 0.02}, foreground=True)
    wait_state(ws, job.id, "running")
    rec = read_record(ws.run(job.id).job_json)
    assert rec.pgid == proc.pid and rec.pgid != os.getpgid(0)
    sv.pause(ws, job.id)  # would stop this test process too if the group were shared
    assert state(ws, job.id) == "paused"
    sv.cont(ws, job.id)
    assert "stopped" in sv.stop(ws, job.id, wait=True, timeout=60)
    assert proc.wait(timeout=30) == 0


def test_ddp_through_torchrun_on_cpu(ws) -> None:
    """--gpus 2 launches torchrun; on the CPU the two ranks use gloo. Rank 0 alone writes metrics. Queued behind
    another job, rank 1 waits for rank 0's go file, not in the rendezvous (which times out on long queues)."""
    first, _ = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 200, "step_sleep": 0.05})
    job, _ = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 30, "batch_size": 16}, gpu="cpu", gpus=2,
                          after=first.id)
    assert "torch.distributed.run" in " ".join(job.argv) and "--nproc-per-node=2" in job.argv
    wait_state(ws, job.id, "finished", "failed", timeout=120)
    st = sv.job_status(ws, job.id)
    assert st.state == "finished", (st.reason, ws.run(job.id).stdout.read_text()[-2000:])
    steps = [r["step"] for r in metric_rows(ws.run(job.id).metrics) if r["split"] == "train"]
    # one writer (no duplicated rows from rank 1); --batch-size is per process, so two ranks take half the steps
    assert steps == list(range(1, 16))
    log = ws.run(job.id).stdout.read_text()
    assert "queued: waiting for" in log and log.count("started on cpu") == 1, log[-2000:]


def test_gpu_slots_cap_jobs_per_gpu(ws) -> None:
    """--max-per-gpu: slot flocks in logs/.gpu; a job holding them blocks the next one on that GPU only."""
    from core.runrec import JobRecord
    from jobs.runtime import _take_gpu_slots

    one = JobRecord(id="a", kind="cnn", gpu="0", max_per_gpu=1)
    held = _take_gpu_slots(ws, one)
    assert held and _take_gpu_slots(ws, JobRecord(id="b", kind="cnn", gpu="0", max_per_gpu=1)) is None
    assert _take_gpu_slots(ws, JobRecord(id="c", kind="cnn", gpu="1", max_per_gpu=1))  # another GPU is free
    assert _take_gpu_slots(ws, JobRecord(id="d", kind="cnn", gpu="0,1", max_per_gpu=2))  # second slots
    assert _take_gpu_slots(ws, JobRecord(id="e", kind="cnn", gpu="0", max_per_gpu=0)) == []  # no limit
    for lock in held:
        lock.release()
    assert _take_gpu_slots(ws, JobRecord(id="b", kind="cnn", gpu="0", max_per_gpu=1))


def test_stop_of_a_job_still_starting_waits_for_its_process_group(ws) -> None:
    """Between taking its lock and recording its pid/group a job cannot be signalled: stop waits for the group
    instead of marking a stop that nobody received (a second stop would then kill it)."""
    from core.runrec import JobRecord, write_record

    run = ws.run("demo-0001").make()
    write_record(run.job_json, JobRecord(id="demo-0001", kind="demo", attempts=1))
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom jobs.locks import FileLock\n"
                               f"FileLock({str(run.lock)!r}).acquire(timeout=5)\nprint('locked', flush=True)\n"
                               "time.sleep(60)"], stdout=subprocess.PIPE, env=subprocess_env(), start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == b"locked"

        def record_group() -> None:
            time.sleep(1.0)
            rec = read_record(run.job_json)
            rec.state, rec.pid, rec.pgid = "running", holder.pid, holder.pid
            write_record(run.job_json, rec)

        threading.Thread(target=record_group).start()
        assert "stopping" in sv.stop(ws, "demo-0001")  # waits ~1 s for the group, then signals it
        assert holder.wait(timeout=10) == -signal.SIGTERM
    finally:
        holder.kill()


def _has_event(run, name: str) -> bool:
    return run.metrics.exists() and f'"event":"{name}"' in run.metrics.read_text().replace(" ", "")


def test_resume_of_an_old_job_reads_starting_and_its_queue_keeps_waiting(ws) -> None:
    """Resume times the relaunch: a job created long ago is starting (not crashed) until its new process holds its
    lock, so a job queued behind it waits instead of failing; and it reads running while it loads latest.pt."""
    from core.runrec import write_record

    first, _ = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 60, "step_sleep": 0.01})
    run = ws.run(first.id)
    wait_for(lambda: last_step(run.job_json) > 3, what="steps")
    sv.stop(ws, first.id, wait=True)
    rec = read_record(run.job_json)
    rec.created -= 3600  # an old job: the gap between relaunch and lock used to read as "failed (crashed)"
    write_record(run.job_json, rec)
    second, _ = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 5}, after=first.id)
    wait_for(lambda: "waiting for" in str(read_record(ws.run(second.id).job_json).progress.get("queued")),
             what="queued")
    seen: list[tuple[str, bool]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append((state(ws, first.id), _has_event(run, "resumed")))
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert "resumed" in sv.resume(ws, first.id)
        wait_for(lambda: _has_event(run, "resumed"), what="resumed event")
    finally:
        done.set()
        watcher.join()
    assert "failed" not in {s for s, _ in seen}, seen
    assert ("running", False) in seen  # running while it imports torch and loads latest.pt, not queued
    wait_state(ws, second.id, "finished", "failed")
    assert state(ws, second.id) == "finished", ws.run(second.id).stdout.read_text()[-500:]
    assert state(ws, first.id) == "finished"


def test_a_queued_resumed_job_keeps_its_progress(ws) -> None:
    """While a resumed job waits its turn, jobs ls still shows where it stopped (step, loss) and why it waits."""
    from core.runrec import JobRecord, write_record

    blocker = ws.run("demo-0100").make()  # a dependency that has not finished (stopped, to be resumed some day)
    write_record(blocker.job_json, JobRecord(id="demo-0100", kind="demo", state="stopped"))
    job, _ = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 100_000, "step_sleep": 0.005})
    run = ws.run(job.id)
    wait_for(lambda: last_step(run.job_json) > 3, what="steps")
    sv.stop(ws, job.id, wait=True)
    stopped = read_record(run.job_json).progress
    rec = read_record(run.job_json)
    rec.after = "demo-0100"  # as if it had been queued behind the other job
    write_record(run.job_json, rec)
    sv.resume(ws, job.id)
    wait_for(lambda: read_record(run.job_json).progress.get("queued"), what="queued")
    prog = sv.job_status(ws, job.id).record.progress
    assert prog["step"] == stopped["step"] and prog["loss"] == stopped["loss"]
    assert prog["queued"] == "waiting for demo-0100 (stopped) to finish"
    listed = {j.id: j for j in sv.list_status(ws)}[job.id]
    assert listed.state == "queued" and listed.record.progress["step"] == stopped["step"]
    sv.kill(ws, job.id, grace=1)


def test_pause_reports_gpu_memory_and_a_stopping_job_is_neither_paused_nor_waited_for(ws, monkeypatch) -> None:
    """pause reports what the paused group still holds (NVML, faked here); a stopping job refuses pause (it would
    stall its checkpoint); a stop that times out escalates to kill."""
    import core.gpu

    asked: list[set[int]] = []
    monkeypatch.setattr(core.gpu, "process_gpu_memory_mb", lambda pids: asked.append(set(pids)) or 2048.0)
    stuck = {"epochs": 1, "steps_per_epoch": 5, "step_sleep": 30}
    one, _ = sv.start_job(ws, "demo", stuck)
    two, _ = sv.start_job(ws, "demo", stuck)
    wait_state(ws, one.id, "running")
    wait_state(ws, two.id, "running")
    assert sv.pause(ws, one.id) == f"paused {one.id}; it still holds 2048 MiB of GPU memory"
    assert read_record(ws.run(one.id).job_json).pid in asked[-1]
    assert sv.job_status(ws, one.id).gpu_mem_mb == 2048.0
    sv.cont(ws, one.id)
    assert "stopping" in sv.stop(ws, one.id)
    with pytest.raises(NcanvasError, match=f"^{one.id} is stopping; pausing it now would stall its checkpoint"):
        sv.pause(ws, one.id)
    t0 = time.monotonic()
    assert sv.stop(ws, two.id, wait=True, timeout=1.0) == f"killed {two.id} (no exit within 1s of stop)"
    assert time.monotonic() - t0 < 15 and state(ws, two.id) == "killed"
    sv.kill(ws, one.id, grace=0.5)


def test_kill_ends_every_process_of_the_group(ws) -> None:
    """The job's group holds a child that ignores SIGTERM (like a stuck data-loader worker): kill must still leave
    no process of the group behind."""
    job, _ = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 100_000, "step_sleep": 0.01,
                                       "spawn_child": True})
    run = ws.run(job.id)
    wait_for(lambda: last_step(run.job_json) > 2, what="steps")
    pgid = read_record(run.job_json).pgid
    assert len(sv._group_pids(pgid)) >= 2  # the trainer and its child
    assert sv.kill(ws, job.id, grace=0.5) == f"killed {job.id}"
    wait_for(lambda: group_gone(pgid), timeout=5, what="an empty process group")
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


def test_rm_refuses_a_starting_job_and_force_kills_it_first(ws) -> None:
    """A job launched but not yet holding its lock is not dead: rm refuses it, rm --force kills it once it holds
    its lock (no process left to recreate the folder), and rm waits for the control lock a resume holds."""
    from core.runrec import JobRecord, write_record
    from jobs.locks import exclusive

    run = ws.run("demo-0009").make()
    write_record(run.job_json, JobRecord(id="demo-0009", kind="demo", attempts=1,
                                         progress={"launched": time.time()}))
    assert sv.job_status(ws, "demo-0009").reason == "starting"
    with pytest.raises(NcanvasError, match="^demo-0009 is starting; stop it first or use --force$"):
        sv.remove(ws, "demo-0009")
    # a launch time an hour ahead (a clock stepped back) is stale: the job reads crashed, and verbs do not wait
    write_record(run.job_json, JobRecord(id="demo-0009", kind="demo", attempts=1,
                                         progress={"launched": time.time() + 3600}))
    assert sv.job_status(ws, "demo-0009").state == "failed"
    t0 = time.monotonic()
    with pytest.raises(NcanvasError, match="nothing to stop"):
        sv.stop(ws, "demo-0009")
    assert time.monotonic() - t0 < 5
    job, proc = sv.start_job(ws, "demo", {"epochs": 1, "steps_per_epoch": 100_000, "step_sleep": 0.01},
                             foreground=True)  # returns at once, before the job holds its lock
    assert sv.remove(ws, job.id, force=True) == f"removed {job.id}"
    proc.wait(timeout=20)  # it got a SIGTERM once it held its lock (it may stop gracefully), SIGKILL after 2 s
    assert group_gone(proc.pid)
    assert not ws.run(job.id).log_dir.exists() and not ws.run(job.id).ckpt_dir.exists()
    write_record(run.job_json, JobRecord(id="demo-0009", kind="demo", state="stopped", attempts=1))
    result: list[str] = []
    with exclusive(run.log_dir / "control.lock"):  # as a resume holds it while it launches
        remover = threading.Thread(target=lambda: result.append(sv.remove(ws, "demo-0009", force=True)))
        remover.start()
        time.sleep(0.5)
        assert not result and run.job_json.exists()
    remover.join(timeout=30)
    assert result == ["removed demo-0009"] and not run.log_dir.exists()


def test_gpu_numbering_follows_the_callers_cuda_visible_devices(monkeypatch) -> None:
    """NVML numbers GPUs in PCI bus order and ignores CUDA_VISIBLE_DEVICES. --gpu N is the caller's N-th visible
    device, auto chooses among the visible ones only, and the job gets the physical index with PCI_BUS_ID order."""
    import core.gpu
    from core.gpu import GpuStat
    from core.runrec import JobRecord

    stats = [GpuStat(0, "A", 0.0, 1_000.0, 80_000.0, "GPU-aaaa-0000"),  # the freest, but hidden below
             GpuStat(1, "B", 0.0, 60_000.0, 80_000.0, "GPU-bbbb-1111"),
             GpuStat(2, "C", 0.0, 20_000.0, 80_000.0, "GPU-cccc-2222"),
             GpuStat(3, "D", 0.0, 40_000.0, 80_000.0, "GPU-dddd-3333")]
    monkeypatch.setattr(core.gpu, "gpu_stats", lambda: stats)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert sv.resolve_gpu("auto") == "0" and sv.resolve_gpu("3") == "3"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    assert sv.resolve_gpu("auto") == "3" and sv.resolve_gpu("auto", gpus=2) == "3,1"
    assert sv.resolve_gpu("0") == "3" and sv.resolve_gpu("1") == "1" and sv.resolve_gpu("1,0") == "1,3"
    with pytest.raises(NcanvasError, match=r"only 2 GPU\(s\) visible \(CUDA_VISIBLE_DEVICES=3,1: physical 3, 1\)"):
        sv.resolve_gpu("2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-cccc,GPU-bbbb-1111")  # UUIDs, abbreviated or whole
    assert sv.resolve_gpu("auto") == "2" and sv.resolve_gpu("1") == "1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,7,1")  # like CUDA, the list ends at an entry naming no device
    assert sv.resolve_gpu("auto", gpus=4) == "2"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-5c1e9b2a")  # a MIG slice NVML does not list: passed through
    assert sv.resolve_gpu("0") == "MIG-5c1e9b2a"
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert sv.resolve_gpu("auto") == "cpu"
        with pytest.raises(NcanvasError, match="hides every GPU"):
            sv.resolve_gpu("0")
    monkeypatch.setattr(core.gpu, "gpu_stats", lambda: [])  # no NVML: the caller's entries are all we know
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,GPU-eeee")
    assert sv.resolve_gpu("1") == "GPU-eeee" and sv.resolve_gpu("auto") == "cpu"
    env = sv._env(JobRecord(id="x", kind="cnn", gpu="3"))
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert sv._env(JobRecord(id="x", kind="cnn", gpu="cpu"))["CUDA_VISIBLE_DEVICES"] == ""
