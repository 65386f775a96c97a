"""Training health badges (jobs/health.py): spikes, explosions, slowdowns, full GPU memory, overfitting, stalls;
and a real run whose heartbeat carries them."""

from __future__ import annotations

from typing import Any

from jobs.health import MIN_HISTORY, RECENT, HealthMonitor, stalled


def _codes(m: HealthMonitor, patience: int = 0) -> list[str]:
    return [b.code for b in m.badges(patience)]


def test_a_steady_run_has_no_badges() -> None:
    m = HealthMonitor()
    for s in range(1, 300):
        m.on_step(s, 1.0 / s ** 0.5 + 0.01 * (s % 3), 2.0 + 0.1 * (s % 5), 1000.0 + s % 7, 0.01)
    assert _codes(m) == []


def test_loss_spike_and_gradient_explosion_show_then_fade() -> None:
    m = HealthMonitor()
    for s in range(1, MIN_HISTORY + 5):
        m.on_step(s, 0.5 + 0.01 * (s % 2), 1.0, 100.0, 0.01)
    m.on_step(40, 9.0, 50.0, 100.0, 0.01)
    assert _codes(m) == ["loss_spike", "grad_explosion"]
    text = m.badges()[0].text
    assert text.startswith("loss spike at step 40: 9 (typical 0.5")
    for s in range(41, 95):
        m.on_step(s, 0.5, 1.0, 100.0, 0.01)
    assert _codes(m) == []


def test_throughput_halving_is_a_slowdown() -> None:
    m = HealthMonitor()
    for s in range(1, 3 * RECENT):
        m.on_step(s, 0.5, 1.0, 1000.0, 0.01)
    for s in range(3 * RECENT, 4 * RECENT + 1):
        m.on_step(s, 0.5, 1.0, 400.0, 0.025)
    (badge,) = m.badges()
    assert badge.code == "slowdown" and "40%" in badge.text


def test_gpu_memory_above_95_percent() -> None:
    m = HealthMonitor()
    m.on_gpu(0.97)
    assert _codes(m) == ["gpu_memory"]
    m.on_gpu(0.5)
    assert _codes(m) == []


def test_overfitting_names_the_best_epoch_and_where_early_stopping_would_end() -> None:
    m = HealthMonitor()
    val = [2.0, 1.5, 1.2, 1.0, 1.1, 1.3, 1.6]
    for epoch, v in enumerate(val, 1):
        for s in range(10):
            m.on_step(epoch * 10 + s, 2.0 / epoch, 1.0, 100.0, 0.01)
        m.on_eval(epoch, epoch * 10 + 9, v)
    (badge,) = m.badges()
    assert badge.code == "overfitting"
    assert badge.text == ("val loss rising for 3 evaluations while train loss falls: best was epoch 4 (step 49); "
                          "early stopping --patience 5 would end at epoch 9")
    assert "early stopping would end at epoch 6" in m.badges(patience=2)[0].text


def test_stalled_is_judged_by_the_reader_from_the_heartbeat() -> None:
    prog: dict[str, Any] = {"heartbeat": 1000.0, "step_s": 0.5}
    assert stalled(prog, 1000.0 + 119) is None  # never sooner than two minutes
    badge = stalled(prog, 1000.0 + 600)
    assert badge is not None and badge.code == "stalled" and badge.text.startswith("no step for 10 min")
    slow = {"heartbeat": 1000.0, "step_s": 60.0}  # a step takes a minute: twenty of them are allowed
    assert stalled(slow, 1000.0 + 1100) is None and stalled(slow, 1000.0 + 1300) is not None
    evaluating = {"heartbeat": 1000.0, "step_s": 0.5, "phase": "evaluating", "eval_s": 400.0}
    assert stalled(evaluating, 1000.0 + 1100) is None and stalled(evaluating, 1000.0 + 1300) is not None
    assert stalled({}, 5000.0) is None


def test_a_real_run_reports_its_health_in_the_heartbeat(ws: Any) -> None:
    from core.runrec import read_record
    from tests.vision_helpers import make_runtime

    rt = make_runtime(ws, "demo-0001", {"epochs": 1, "steps_per_epoch": 40, "batch_size": 8}, kind="demo")
    from jobs.demo import train

    train(rt, rt.config)
    prog = read_record(rt.paths.job_json).progress
    assert prog["health"] == [] and prog["step_s"] > 0 and prog["rss_mb"] > 10
    assert prog["phase"] == "training" and prog["eval_s"] >= 0 and prog["saved_step"] == 40


def test_a_status_carries_the_jobs_badges_and_a_stalled_one_from_the_reader(tmp_path) -> None:
    import time

    from core.paths import Workspace
    from core.runrec import JobRecord, write_record
    from jobs import supervisor as sv
    from jobs.locks import FileLock

    ws = Workspace(tmp_path / "ws").ensure()
    run = ws.run("x").make()
    spike = {"code": "loss_spike", "text": "loss 9.1 at step 400 (typical 0.5)"}
    rec = JobRecord(id="x", kind="demo", state="running", progress={
        "step": 400, "heartbeat": time.time() - 3600, "step_s": 0.5, "health": [spike, "junk"]})
    write_record(run.job_json, rec)
    lock = FileLock(run.lock)
    assert lock.acquire()  # alive: the lock is held
    try:
        st = sv.job_status(ws, "x")
    finally:
        lock.release()
    assert [b["code"] for b in st.health] == ["loss_spike", "stalled"]
    assert st.note == "loss spike, stalled" and "no step for 60 min" in st.health[1]["text"]
    failed = sv.JobStatus(JobRecord(id="y", kind="demo", state="failed"), "failed", False,
                          cause={"reason": "disk full"}, health=(spike,))
    assert failed.note == "disk full"  # a failed job's note is its reason, not its last badges
