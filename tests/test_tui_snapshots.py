"""Screen snapshots at fixed sizes on the deterministic fixture workspace (no clock, host or GPU in view).

Update after an intended change with ``pytest tests/test_tui_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui_fixtures import make_fixture_workspace
from tests.tui_pilot import FAST, wait_until
from tui.app import NcanvasApp
from tui.dashboard import Dashboard
from tui.widgets.jobs_table import JobsTable


@pytest.fixture
def app(tmp_path: Path) -> NcanvasApp:
    return NcanvasApp(make_fixture_workspace(tmp_path / "ws"), host="lab-gpu", gpu_stats=lambda: [],
                      watcher_config=FAST)


async def _settle(pilot, select: str = "cnn-0001") -> None:
    app = pilot.app
    table = app.query_one(JobsTable)
    await wait_until(pilot, lambda: table.row_count == 3, what="rows")
    table.select(select)
    dash = app.query_one(Dashboard)
    await wait_until(pilot, lambda: select in dash.curves.snapshot and dash.curves.snapshot[select].get("val/loss"),
                     what="curves")
    log = dash.query_one("#log")
    await wait_until(pilot, lambda: log.job_id == select and log.line_count >= 3, what="log")
    dash.curves.redraw()
    await pilot.pause(0.3)


def test_dashboard_120x40(app: NcanvasApp, snap_compare) -> None:
    assert snap_compare(app, terminal_size=(120, 40), run_before=_settle)


def test_dashboard_80x24(app: NcanvasApp, snap_compare) -> None:
    assert snap_compare(app, terminal_size=(80, 24), run_before=_settle)


def test_new_job_form(app: NcanvasApp, snap_compare) -> None:
    async def run_before(pilot) -> None:
        await _settle(pilot, "demo-0001")
        await pilot.press("n")
        await wait_until(pilot, lambda: pilot.app.screen.query("#opt-step_sleep"), what="form")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(100, 32), run_before=run_before)


def test_help(app: NcanvasApp, snap_compare) -> None:
    async def run_before(pilot) -> None:
        await _settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=(100, 32), run_before=run_before)
