"""The dashboard never dies from what it reads, from odd values, from resizes or from a key (issue 12, items 1-3)."""

from __future__ import annotations

from pathlib import Path

from core.paths import Workspace
from core.runrec import JobRecord, write_record
from tests.tui_fixtures import make_fixture_workspace
from tests.tui_pilot import FAST, wait_until
from tui.app import NcanvasApp
from tui.capture import screen_text
from tui.dashboard import Dashboard
from tui.widgets.jobs_table import JobsTable
from tui.widgets.plots import CurvePlot


def _app(ws: Workspace) -> NcanvasApp:
    return NcanvasApp(ws, host="test", gpu_stats=lambda: [], watcher_config=FAST)


def _job(ws: Workspace, jid: str, kind: str, lines: list[str], state: str = "failed") -> None:
    run = ws.run(jid).make()
    write_record(run.job_json, JobRecord(id=jid, kind=kind, state=state, created=1.0))
    run.metrics.write_text("".join(line + "\n" for line in lines))


async def _drawn(pilot, app: NcanvasApp) -> None:
    """Wait for the curve plots to finish a picture of their current size (worker or render path)."""
    await pilot.pause(0.5)
    for plot in app.query(CurvePlot):
        if plot.display and plot.size.area:
            plot.render()  # the UI-thread path: raises if a picture cannot be built


async def test_log_y_with_metric_toggle_and_resizes_never_crashes(tmp_path: Path) -> None:
    app = _app(make_fixture_workspace(tmp_path / "ws"))
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(JobsTable)
        await wait_until(pilot, lambda: table.row_count == 3, what="rows")
        await wait_until(pilot, lambda: app.query_one(Dashboard).curves.snapshot, what="curves")
        for job in ("cnn-0001", "llm-0001", "demo-0001"):
            table.select(job)
            await pilot.pause(0.3)
            await pilot.press("l", "m", "m")
            await _drawn(pilot, app)
            for size in ((80, 24), (61, 17), (120, 40)):
                await pilot.resize_terminal(*size)
                await _drawn(pilot, app)
            await pilot.press("l")
            await _drawn(pilot, app)
        assert app.is_running


async def test_log_y_on_a_job_with_no_metric_rows(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    _job(ws, "cnn-0001", "cnn", ['{"v":1,"t":1,"event":"started","step":0}', '{"v":1,"t":2,"event":"failed"}'])
    app = _app(ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.query_one(JobsTable).row_count == 1, what="row")
        await pilot.press("l", "m", "m", "m")
        await _drawn(pilot, app)
        await pilot.resize_terminal(80, 24)
        await _drawn(pilot, app)
        assert app.is_running


NON_FINITE = ['{"step":1,"split":"train","loss":1.0}', '{"step":2,"split":"train","loss":NaN}',
              '{"step":3,"split":"train","loss":1e999}', '{"step":4,"split":"train","loss":0.5}',
              '{"step":5,"split":"val","acc":-Infinity}', '{"step":5,"split":"val","acc":0.5,"loss":-Infinity}',
              '{"step":6,"split":"val","acc":0.7,"loss":0.6}']


async def test_non_finite_values_are_dropped_and_counted(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    _job(ws, "cnn-0001", "cnn", NON_FINITE, state="finished")
    app = _app(ws)
    async with app.run_test(size=(120, 40)) as pilot:  # selected at start: the dashboard must open
        dash = app.query_one(Dashboard)
        await wait_until(pilot, lambda: dash.curves.snapshot.get("cnn-0001", {}).get("val/acc"), what="curves")
        await _drawn(pilot, app)
        loss = app.query_one("#loss-plot", CurvePlot)
        train = next(ln for ln in loss.lines if ln.label == "train")
        assert all(abs(y) < 10 for y in train.ys)
        for log_y in (True, False):
            await pilot.press("l")
            await _drawn(pilot, app)
            assert app.query_one(Dashboard).curves.log_y is log_y
        text = screen_text(app)
        assert "4 non-finite" in text, text  # NaN, 1e999, -Infinity twice: dropped and said
        assert app.is_running


async def test_a_bug_in_a_watcher_callback_a_render_or_an_action_is_a_notification(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    from tui.messages import JobsUpdated

    def broken(self) -> None:
        raise ZeroDivisionError("a bug in an action")

    monkeypatch.setattr(Dashboard, "action_log_y", broken)
    # GPU stats the top bar cannot render
    app = NcanvasApp(make_fixture_workspace(tmp_path / "ws"), host="test", gpu_stats=lambda: [object()],
                     watcher_config=FAST)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.query_one(JobsTable).row_count == 3, what="rows")
        await wait_until(pilot, lambda: any("StatusBar" in n.message for n in app._notifications), what="render")
        app.post_message(JobsUpdated([object()]))  # a status without the fields the table reads
        await wait_until(pilot, lambda: any("job list" in n.message for n in app._notifications), what="callback")
        await pilot.press("l")
        await wait_until(pilot, lambda: any("a bug in an action" in n.message for n in app._notifications),
                         what="action")
        assert app.is_running
        assert "ZeroDivisionError" in (app.ws.logs / "dashboard-errors.log").read_text()
        app.query_one(JobsTable).focus()
        await pilot.press("down")  # and it still works
        await wait_until(pilot, lambda: app.query_one(JobsTable).current_id == "llm-0001", what="cursor")
