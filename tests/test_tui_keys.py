"""Keys from any focus (issue 12, item 4): panes switch and the app quits from a text field, esc leaves a field,
Tab never strands the pane's keys, the footer keeps quit and help; help and palette come from the bindings."""

from __future__ import annotations

from pathlib import Path

from tests.tui_fixtures import make_fixture_workspace
from tests.tui_pilot import FAST, wait_until
from tui.app import NcanvasApp
from tui.capture import screen_text
from tui.widgets.jobs_table import JobsTable


def _app(tmp_path: Path) -> NcanvasApp:
    return NcanvasApp(make_fixture_workspace(tmp_path / "ws"), host="test", gpu_stats=lambda: [],
                      watcher_config=FAST)


async def _ready(pilot, app: NcanvasApp) -> None:
    await wait_until(pilot, lambda: app.query_one(JobsTable).row_count == 3, what="rows")


def _active(app: NcanvasApp) -> str:
    return str(app.query_one("#panes").active)


async def test_panes_switch_from_inside_a_text_field(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _ready(pilot, app)
        await pilot.press("2")
        field = app.query_one("#classify #image")
        field.focus()
        await pilot.pause()  # focus() applies on the next turn
        await pilot.press("pound_sign")  # alt+3 in tmux/xterm (ESC 3), as Textual reads it
        await wait_until(pilot, lambda: _active(app) == "gradcam", what="alt+3 from a field")
        assert field.value == "sample:0", "nothing typed"
        app.query_one("#gradcam #image").focus()
        await pilot.pause()  # focus() applies on the next turn
        await pilot.press("f4")
        await wait_until(pilot, lambda: _active(app) == "explain", what="F4 from a field")
        app.query_one("#explain #prompt").focus()
        await pilot.pause()  # focus() applies on the next turn
        await pilot.press("alt+5")
        await wait_until(pilot, lambda: _active(app) == "analyze", what="alt+5 from a field")
        assert app.query_one("#explain #prompt").value == ""
        app.query_one("#analyze #image").focus()
        await pilot.pause()  # focus() applies on the next turn
        await pilot.press("f1")
        await wait_until(pilot, lambda: _active(app) == "jobs", what="F1 from a field")
        assert isinstance(app.focused, JobsTable)


async def test_escape_leaves_a_field_and_digits_switch_again(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _ready(pilot, app)
        await pilot.press("2")
        pane = app.query_one("ClassifyPane")
        assert app.focused is pane, "switching to a pane focuses the pane: its keys act at once"
        field = pane.query_one("#image")
        field.focus()
        await pilot.pause()  # focus() applies on the next turn
        await pilot.press("end", "3")
        assert field.value == "sample:03" and _active(app) == "classify", "a digit in a field types"
        assert "Leave field" in screen_text(app), "the footer says how to get out"
        await pilot.press("escape")
        assert app.focused is pane
        await pilot.press("3")
        await wait_until(pilot, lambda: _active(app) == "gradcam", what="digit after esc")


async def test_tab_never_strands_the_pane_keys(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await _ready(pilot, app)
        await pilot.press("3")
        pane = app.query_one("GradCamPane")
        for _ in range(8):
            await pilot.press("tab")
            assert app.focused is not None and pane in app.focused.ancestors_with_self, app.focused
            if app.focused.id != "image":  # a text field takes printable keys; everywhere else they act
                keys = app.screen.active_bindings
                assert {"t", "y", "m", "a", "v"} <= set(keys), sorted(keys)
                assert "t Class+" in screen_text(app)


async def test_footer_keeps_quit_and_help_at_80x24(tmp_path: Path) -> None:
    app = _app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(pilot, app)
        await wait_until(pilot, lambda: "Mark" in screen_text(app).splitlines()[-1], what="footer")
        footer = screen_text(app).splitlines()[-1]
        assert "q Quit" in footer and "? Help" in footer, footer
