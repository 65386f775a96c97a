"""The dashboard driving real ``demo`` job processes: start with n, curve, pause/continue, stop/resume, kill."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.paths import Workspace
from tests.tui_pilot import FAST, kill_live_jobs, loss_steps, state_of, wait_until
from tui.app import NcanvasApp
from tui.dashboard import Dashboard
from tui.widgets.plots import CurvePlot


@pytest.fixture
def ws(tmp_path: Path):
    ws = Workspace(tmp_path / "ws").ensure()
    yield ws
    kill_live_jobs(ws)


@pytest.mark.slow
async def test_job_lifecycle_from_the_keyboard(ws: Workspace) -> None:
    app = NcanvasApp(ws, host="test", gpu_stats=lambda: [], watcher_config=FAST)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        form = await wait_until(pilot, lambda: app.screen.query("#opt-step_sleep") and app.screen, what="form")
        form.query_one("#opt-epochs").value = "40"
        form.query_one("#opt-step_sleep").value = "0.02"
        form.query_one("#opt-checkpoint_every").value = "5"
        await pilot.press("ctrl+s")
        jid = "demo-0001"
        await wait_until(pilot, lambda: state_of(app, jid) == "running", what="running row")
        await wait_until(pilot, lambda: len(loss_steps(app, jid)) >= 10, what="curve points")
        await pilot.pause(0.4)  # one throttled redraw
        assert app.query_one("#loss-plot", CurvePlot).lines, "the loss plot has a line"

        await pilot.press("p")
        await wait_until(pilot, lambda: state_of(app, jid) == "paused", what="paused")
        await pilot.press("p")
        await wait_until(pilot, lambda: state_of(app, jid) == "running", what="continued")

        await pilot.press("s")
        await wait_until(pilot, lambda: state_of(app, jid) == "stopped", what="stopped")
        await pilot.pause(0.3)
        stopped_at = max(loss_steps(app, jid))
        await pilot.press("r")
        await wait_until(pilot, lambda: state_of(app, jid) == "running", what="resumed")
        await wait_until(pilot, lambda: max(loss_steps(app, jid)) > stopped_at + 5, what="curve continues")
        steps = loss_steps(app, jid)
        assert steps[0] == 1 and steps == sorted(steps), "one continuous series across the resume"

        await pilot.press("k")
        await wait_until(pilot, lambda: app.screen.__class__.__name__ == "ConfirmScreen", what="confirm")
        await pilot.press("y")
        await wait_until(pilot, lambda: state_of(app, jid) == "killed", timeout=30, what="killed")
        log = app.query_one(Dashboard).query_one("#log")
        assert log.job_id == jid and log.line_count >= 2


@pytest.mark.slow
async def test_invalid_form_is_refused_and_failed_job_reported(ws: Workspace) -> None:
    app = NcanvasApp(ws, host="test", gpu_stats=lambda: [], watcher_config=FAST)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        form = await wait_until(pilot, lambda: app.screen.query("#opt-epochs") and app.screen, what="form")
        form.query_one("#opt-epochs").value = "0"
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert app.screen is form, "a bad value keeps the form open"
        assert "--epochs must be >= 1" in str(form.query_one("#error").render())
        assert not ws.job_ids(), "nothing was started"
        form.query_one("#opt-epochs").value = "1"
        form.query_one("#opt-fail_at_step").value = "3"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: state_of(app, "demo-0001") == "failed", what="failed job")
        await pilot.press("enter")
        text = await wait_until(pilot, lambda: "demo failure" in getattr(app.screen, "plain", "")
                                and app.screen.plain, what="details")
        assert "cause: RuntimeError: demo failure requested at step 3" in text
        assert "raised at: jobs/demo.py:" in text and "fix: see the traceback in the log: ncanvas logs demo-0001" in text


@pytest.mark.slow
async def test_resume_without_latest_asks_before_starting_over(ws: Workspace) -> None:
    """A job that logged steps but kept no latest.pt: r asks, y restarts from step 0 with the old rows archived."""
    import json

    from core.runrec import JobRecord, write_record

    run = ws.run("demo-0001").make()
    write_record(run.job_json, JobRecord(id="demo-0001", kind="demo", state="killed", attempts=1,
                                         config={"epochs": 1, "steps_per_epoch": 4}))
    run.metrics.write_text(json.dumps({"step": 1, "split": "train", "loss": 2.0}) + "\n")
    app = NcanvasApp(ws, host="test", gpu_stats=lambda: [], watcher_config=FAST)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: state_of(app, "demo-0001") == "killed", what="row")
        await pilot.press("r")
        confirm = await wait_until(pilot, lambda: app.screen.__class__.__name__ == "ConfirmScreen" and app.screen,
                                   what="the from-scratch question")
        assert "no latest.pt" in str(confirm.query_one("#question").render())
        await pilot.press("y")
        await wait_until(pilot, lambda: state_of(app, "demo-0001") == "finished", timeout=60, what="finished")
    assert (run.log_dir / "metrics.attempt-1.jsonl").is_file()


async def test_an_unreadable_record_is_a_row_with_its_reason(ws: Workspace) -> None:
    run = ws.run("demo-0002").make()
    run.job_json.write_text("{not json")
    app = NcanvasApp(ws, host="test", gpu_stats=lambda: [], watcher_config=FAST)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: state_of(app, "demo-0002") == "unreadable", what="the unreadable row")
        table = app.query_one(Dashboard).table
        cells = [str(c) for c in table.get_row("demo-0002")]
        assert any("job.json" in c for c in cells), cells


@pytest.mark.slow
async def test_a_job_failing_while_watched_is_notified_with_its_fix(ws: Workspace) -> None:
    from jobs import supervisor

    app = NcanvasApp(ws, host="test", gpu_stats=lambda: [], watcher_config=FAST)
    async with app.run_test(size=(140, 40)) as pilot:
        supervisor.start_job(ws, "demo", {"epochs": 50, "lr": 10.0, "checkpoint_every": 1}, job_id="demo-0001")
        await wait_until(pilot, lambda: state_of(app, "demo-0001") == "failed", timeout=60, what="failed row")
        await pilot.pause(0.2)
        texts = [n.message for n in app._notifications]
        assert any(t.startswith("demo-0001 failed: training diverged") and "\nfix: lower --lr" in t
                   for t in texts), texts
        table = app.query_one(Dashboard).table
        assert "diverged (NaN/inf)" in [str(c) for c in table.get_row("demo-0001")]
        await pilot.press("enter")
        text = await wait_until(pilot, lambda: "cause:" in getattr(app.screen, "plain", "") and app.screen.plain,
                                what="details")
        assert "\nfix: lower --lr" in text and "cause: training diverged" in text
