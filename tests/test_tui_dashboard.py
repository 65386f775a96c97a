"""Dashboard behaviour on a hand-written workspace (no job processes): table, curves, keys, errors, layout."""

from __future__ import annotations

from pathlib import Path

from tests.tui_fixtures import make_fixture_workspace
from tests.tui_pilot import FAST, wait_until
from tui.app import NcanvasApp
from tui.capture import screen_text
from tui.dashboard import Dashboard
from tui.widgets.jobs_table import JobsTable
from tui.widgets.plots import CurvePlot


def _app(tmp_path: Path, **kw) -> NcanvasApp:
    return NcanvasApp(make_fixture_workspace(tmp_path / "ws"), host="test", gpu_stats=lambda: [],
                      watcher_config=FAST, **kw)


async def _loaded(pilot, app: NcanvasApp) -> JobsTable:
    table = app.query_one(JobsTable)
    await wait_until(pilot, lambda: table.row_count == 3, what="rows")
    await wait_until(pilot, lambda: app.query_one(Dashboard).curves.snapshot, what="curves")
    return table


async def test_rows_curves_and_metric_plot(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await _loaded(pilot, app)
        assert table.current_id == "cnn-0001"
        await pilot.pause(0.4)
        loss = app.query_one("#loss-plot", CurvePlot)
        metric = app.query_one("#metric-plot", CurvePlot)
        assert {ln.label for ln in loss.lines} == {"train", "val"}
        assert metric.title == "acc" and not metric.has_class("-hidden")
        text = screen_text(app)
        assert "finished" in text and "failed" in text and "GPU N/A" in text and "0 running" in text
        await pilot.press("down")  # llm-0001: perplexity instead of accuracy
        await wait_until(pilot, lambda: "llm-0001" in app.query_one(Dashboard).curves.snapshot, what="llm curves")
        await pilot.pause(0.4)
        assert metric.title == "ppl"


async def test_overlay_logy_and_smoothing_keys(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("space", "down", "down")  # mark cnn-0001, move to demo-0001
        dash = app.query_one(Dashboard)
        await wait_until(pilot, lambda: set(dash.curves.snapshot) == {"demo-0001", "cnn-0001"}, what="overlay")
        await pilot.pause(0.4)
        labels = {ln.label for ln in app.query_one("#loss-plot", CurvePlot).lines}
        assert "cnn-0001 train" in labels and "demo-0001 train" in labels
        await pilot.press("l")
        await pilot.pause(0.4)
        assert app.query_one("#loss-plot", CurvePlot).log_y
        await pilot.press("0")
        assert dash.curves.smoothing == 0.0
        await pilot.press("e", "e")
        assert dash.curves.smoothing == 0.6


async def test_filter_details_help_and_delete(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await _loaded(pilot, app)
        await pilot.press("slash", "f", "a", "i", "l")
        await wait_until(pilot, lambda: table.row_count == 1, what="filtered")
        assert table.current_id == "demo-0001"
        await pilot.press("escape")
        await wait_until(pilot, lambda: table.row_count == 3, what="filter cleared")
        table.select("demo-0001")
        await pilot.press("enter")
        details = await wait_until(pilot, lambda: "RuntimeError" in getattr(app.screen, "plain", "")
                                   and app.screen.plain, what="details")
        assert "reason" in details and "epoch_end" in details
        await pilot.press("escape")
        await pilot.press("question_mark")
        await pilot.pause(0.1)
        assert app.screen.__class__.__name__ == "HelpScreen"
        await pilot.press("escape")
        table.select("cnn-0001")
        await pilot.press("d")
        await pilot.pause(0.1)
        await pilot.press("n")  # answer no: nothing happens
        await pilot.pause(0.3)
        assert (app.ws.logs / "cnn-0001").is_dir()
        await pilot.press("d")
        await pilot.pause(0.1)
        await pilot.press("y")
        await wait_until(pilot, lambda: table.row_count == 2, what="row removed")
        assert not (app.ws.logs / "cnn-0001").exists() and not (app.ws.checkpoints / "cnn-0001").exists()


async def test_wrong_state_is_a_notification_not_a_crash(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("p")  # cnn-0001 is finished
        await wait_until(pilot, lambda: app._notifications, what="notification")
        texts = [n.message for n in app._notifications]
        assert any("finished; nothing to pause" in t for t in texts)
        assert app.is_running


async def test_small_terminal_and_panes(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot, app)
        await pilot.pause(0.4)
        assert app.screen.has_class("-compact")
        text = screen_text(app)
        assert "cnn-0001" in text and "loss" in text
        for key, pane in (("2", "classify"), ("3", "gradcam"), ("4", "explain"), ("5", "analyze"), ("1", "jobs")):
            await pilot.press(key)
            await pilot.pause(0.05)
            assert app.query_one("#panes").active == pane
        # back on Jobs, the job keys act on the table again (focus never lands in the hidden filter box)
        assert app.focused is not None and app.focused.id != "filter"
        log_y = app.query_one(Dashboard).curves.log_y
        await pilot.press("l")
        await wait_until(pilot, lambda: app.query_one(Dashboard).curves.log_y != log_y, what="log-y after switching")


async def test_command_palette_runs_dashboard_actions(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _loaded(pilot, app)
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"toggle log")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.query_one(Dashboard).curves.log_y, what="log-y via palette")


async def test_unknown_theme_is_refused(tmp_path: Path) -> None:
    import pytest

    from core.errors import NcanvasError

    with pytest.raises(NcanvasError, match="unknown theme"):
        _app(tmp_path, theme="no-such-theme")
    app = _app(tmp_path, theme="nord")
    assert app.theme == "nord"


async def test_form_follows_the_kind_and_refuses_bad_values(tmp_path: Path) -> None:
    from textual.widgets import Select

    app = _app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _loaded(pilot, app)  # cursor on cnn-0001: the form opens on its kind
        await pilot.press("n")
        form = await wait_until(pilot, lambda: app.screen.query("#opt-model") and app.screen, what="cnn form")
        assert form.kind == "cnn" and isinstance(form.query_one("#opt-model"), Select)
        assert [s.name for s in form.specs][:4] == ["model", "dataset", "epochs", "lr"]
        form.query_one("#opt-lr").value = "fast"
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert "--lr expects float" in str(form.query_one("#error").render())
        form.query_one("#kind", Select).value = "demo"
        await wait_until(pilot, lambda: form.query("#opt-step_sleep"), what="demo fields")
        assert not form.query("#opt-model")
        form.query_one("#gpu").value = "the big one"
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert "gpu must be auto, cpu or an index" in str(form.query_one("#error").render())
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert app.screen is not form and app.ws.job_ids() == ["cnn-0001", "demo-0001", "llm-0001"]


def test_cli_theme_option_is_checked(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tui.cli import app as cli

    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "ws"), "--theme", "no-such-theme"])
    assert result.exit_code == 1 and "unknown theme 'no-such-theme'" in result.output


async def test_mouse_and_log_follow(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await _loaded(pilot, app)
        await pilot.click(JobsTable, offset=(6, 3))  # the third data row (header is row 0)
        await wait_until(pilot, lambda: table.current_id == "demo-0001", what="row clicked")
        log = app.query_one(Dashboard).query_one("#log")
        await wait_until(pilot, lambda: log.job_id == "demo-0001", what="log follows the selection")
        await pilot.click("#log")
        await pilot.press("f")
        assert not log.follow and "paused" in str(log.border_title)
        await pilot.press("f")
        assert log.follow
        await pilot.click("#--content-tab-gradcam")
        await wait_until(pilot, lambda: app.query_one("#panes").active == "gradcam", what="tab clicked")
        await pilot.pause(0.3)
        assert app.query_one("#panes").active == "gradcam", "the pane stays (focus moved into it)"


async def test_header_shows_every_gpu_and_keeps_the_job_count_on_a_narrow_terminal(tmp_path: Path) -> None:
    from core.gpu import GpuStat

    gpus = [GpuStat(i, "H100", 37.0 + i, 12_000.0 * (i + 1), 81_559.0) for i in range(4)]
    app = NcanvasApp(make_fixture_workspace(tmp_path / "ws"), host="lab", gpu_stats=lambda: gpus,
                     watcher_config=FAST)
    async with app.run_test(size=(80, 24)) as pilot:
        await _loaded(pilot, app)
        await wait_until(pilot, lambda: "GPU0 37%" in screen_text(app), what="GPU stats in the header")
        header = screen_text(app).splitlines()[0]
        assert "0 running" in header and "GPU0 37% 11.7G/79.6G" in header, header
    app = NcanvasApp(make_fixture_workspace(tmp_path / "ws2"), host="lab", gpu_stats=lambda: gpus,
                     watcher_config=FAST)
    async with app.run_test(size=(200, 24)) as pilot:
        await wait_until(pilot, lambda: "GPU3 40%" in screen_text(app), what="all four GPUs on a wide terminal")
