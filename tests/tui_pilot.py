"""Helpers for driving the dashboard with Textual's pilot."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tui.watcher import WatcherConfig

FAST = WatcherConfig(interval=0.05, status_interval=0.2, gpu_interval=5.0)


async def wait_until(pilot: Any, pred: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Let the app run until ``pred()`` is truthy (the app keeps processing messages meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def state_of(app: Any, job_id: str) -> str | None:
    from tui.dashboard import Dashboard

    st = app.query_one(Dashboard).status(job_id)
    return st.state if st is not None else None


def loss_steps(app: Any, job_id: str) -> list[float]:
    from tui.dashboard import Dashboard

    snap = app.query_one(Dashboard).curves.snapshot.get(job_id, {})
    return list(snap.get("train/loss", ([], []))[0])


def kill_live_jobs(ws: Any) -> None:
    """Test cleanup: no job process outlives its test, even when an assertion failed midway."""
    from core.errors import NcanvasError
    from jobs.supervisor import kill, list_status

    for st in list_status(ws):
        if st.alive:
            try:
                kill(ws, st.id, grace=1.0)
            except NcanvasError:
                pass
