"""Run records: ``logs/<id>/job.json``, written atomically. No torch.

The record holds the job's spec (kind, config, argv, code version) and its state. The supervisor writes it
while no job process is alive (create, resume, kill); the job process writes it while it holds the run lock.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_json
from core.errors import JobNotFound, NcanvasError
from core.paths import Workspace

SCHEMA_VERSION = 1

QUEUED, RUNNING, PAUSED, STOPPING = "queued", "running", "paused", "stopping"
STOPPED, FINISHED, FAILED, KILLED = "stopped", "finished", "failed", "killed"
STATES = (QUEUED, RUNNING, PAUSED, STOPPING, STOPPED, FINISHED, FAILED, KILLED)
LIVE_STATES = frozenset({QUEUED, RUNNING, PAUSED, STOPPING})
TERMINAL_STATES = frozenset({STOPPED, FINISHED, FAILED, KILLED})


@dataclass
class JobRecord:
    """The content of ``job.json``."""

    id: str
    kind: str
    config: dict[str, Any] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    code: dict[str, Any] = field(default_factory=dict)  # {"root", "commit", "dirty"}
    state: str = QUEUED
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    pid: int | None = None
    pgid: int | None = None
    gpu: str = "cpu"  # "cpu", "0", "0,1"
    nproc: int = 1  # processes (DDP ranks through torchrun); one per GPU, or gloo ranks on the CPU
    after: str | None = None  # start only when this job has finished
    max_per_gpu: int = 1  # queue while this many jobs already run on the job's GPU (0 = no limit)
    resume: bool = False  # the current/last attempt was started from latest.pt
    attempts: int = 0
    exit_code: int | None = None
    error: str | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        if not isinstance(data, dict) or "id" not in data or "kind" not in data:
            raise NcanvasError("job.json is not an ncanvas run record")
        if int(data.get("schema", 1)) > SCHEMA_VERSION:
            raise NcanvasError(f"job.json has schema {data['schema']}; this ncanvas reads up to {SCHEMA_VERSION}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def write_record(path: Path, rec: JobRecord) -> None:
    atomic_write_json(path, rec.to_json())


def read_record(path: Path) -> JobRecord:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JobNotFound(f"no job at {path.parent}") from None
    except (OSError, ValueError) as e:
        raise NcanvasError(f"cannot read {path}: {e}") from None
    return JobRecord.from_json(data)


def load_job(ws: Workspace, job_id: str) -> JobRecord:
    run = ws.run(job_id)
    if not run.job_json.is_file():
        raise JobNotFound(f"no job {job_id!r} in {ws.root}")
    return read_record(run.job_json)


def list_jobs(ws: Workspace) -> list[JobRecord]:
    """Every readable run record in the workspace, oldest first; unreadable ones are skipped."""
    out = []
    for job_id in ws.job_ids():
        try:
            out.append(read_record(ws.run(job_id).job_json))
        except NcanvasError:
            continue
    out.sort(key=lambda r: (r.created, r.id))
    return out


def next_job_id(ws: Workspace, kind: str) -> str:
    """``<kind>-<nnnn>`` with the next free number for this kind."""
    prefix = f"{kind}-"
    nums = [int(i[len(prefix):]) for i in ws.job_ids() if i.startswith(prefix) and i[len(prefix):].isdigit()]
    if ws.logs.is_dir():  # directories being created right now have no job.json yet
        nums += [int(p.name[len(prefix):]) for p in ws.logs.iterdir()
                 if p.name.startswith(prefix) and p.name[len(prefix):].isdigit()]
    return f"{prefix}{max(nums, default=0) + 1:04d}"
