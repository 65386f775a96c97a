"""The real single-node Slurm for the tests: a session fixture that uses the running one, starts it with
``.ci/slurm-up.sh`` where it can (root), and skips with that script's reason where it cannot."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.metrics import iter_rows
from tests.jobhelpers import wait_for

UP = Path(__file__).resolve().parents[1] / ".ci" / "slurm-up.sh"
_reason: list[str] = []


def slurm_reason() -> str | None:
    """None when Slurm takes jobs here (started if need be, once per session), else why not."""
    if not _reason:
        check = subprocess.run(["bash", str(UP), "--check"], capture_output=True, text=True)
        if check.returncode != 0:
            up = subprocess.run(["bash", str(UP)], capture_output=True, text=True, timeout=600)
            check = up if up.returncode != 0 else subprocess.run(["bash", str(UP), "--check"], capture_output=True,
                                                                  text=True)
        _reason.append("" if check.returncode == 0 else (check.stderr.strip().splitlines() or ["failed"])[-1])
    return _reason[0] or None


@pytest.fixture(scope="session")
def slurm() -> None:
    """Needs a Slurm that takes jobs; skips with the reason where none can be started (not root, no apt)."""
    why = slurm_reason()
    if why:
        pytest.skip(f"no Slurm here: {why}")


@pytest.fixture
def sws(ws, slurm):
    """A workspace whose Slurm jobs are all cancelled when the test ends (pass or fail)."""
    yield ws
    from core.runrec import list_jobs

    ids = []
    for rec in list_jobs(ws):
        ids += [str(j) for j in [rec.slurm.get("job_id"), *rec.slurm.get("history", [])] if j]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True)


def events(ws, jid: str, name: str) -> list[dict]:
    return [r for r in iter_rows(ws.run(jid).metrics) if r.get("event") == name]


def wait_event(ws, jid: str, name: str, n: int = 1, timeout: float = 120) -> list[dict]:
    return wait_for(lambda: len(events(ws, jid, name)) >= n and events(ws, jid, name), timeout, 0.2,
                    what=f"{jid} event {name} x{n}")
