"""Helpers for tests that drive real job processes."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.metrics import iter_rows


def wait_for(pred: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        val = pred()
        if val:
            return val
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# what depends on the clock, not on the computation: the time of a row and the throughputs (kinds' units)
TIMING_KEYS = frozenset({"t", "tok_s", "img_s", "samples_s"})


def untimed(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in TIMING_KEYS}


def metric_rows(path: Path) -> list[dict[str, Any]]:
    """Metric rows without timestamps, throughputs or events: what must be identical across a stop/resume."""
    return [untimed(r) for r in iter_rows(path) if "event" not in r]


def effective_rows(path: Path) -> list[dict[str, Any]]:
    """Metric rows as a reader sees them after applying ``resumed`` rewinds (replayed steps dropped)."""
    out: list[dict[str, Any]] = []
    for r in iter_rows(path):
        if r.get("event") == "resumed":
            while out and out[-1]["step"] > r["step"]:
                out.pop()
        elif "event" not in r:
            out.append(untimed(r))
    return out


def last_step(job_json: Path) -> int:
    """The last train step a job logged (its metrics.jsonl beside ``job_json``); 0 before any."""
    path = job_json.parent / "metrics.jsonl"
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 4096))
            lines = f.read().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if "step" in row and "event" not in row:
            return int(row["step"])
    return 0


def group_gone(pgid: int) -> bool:
    """No process is left in the process group ``pgid`` (the dead reaped too)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False
