"""Run records: ``logs/<id>/job.json``, written atomically. No torch.

The record holds the job's spec (kind, config, argv, code version) and its state. The supervisor writes it
while no job process is alive (create, resume, kill); the job process writes it while it holds the run lock.
Fields added later (``backend``, ``slurm``, ``requeues``) have defaults, so records written before them load as
local jobs.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_json
from core.errors import JobNotFound, NcanvasError
from core.paths import JOB_ID_RE, Workspace

SCHEMA_VERSION = 1

class JobState(str, Enum):
    """A job's state. The live ones describe a process (``paused`` and ``stopping`` are derived by the supervisor
    from the process and the stop request, never stored by the job); the terminal ones are the job's outcome, and a
    failed job's reason is separate (``JobRecord.error`` and ``cause``), as in pueue. A ``str``: JSON, rich and
    comparisons with plain strings see its value."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"

    def __str__(self) -> str:
        return self.value

    @property
    def live(self) -> bool:
        """A process is (or is about to be) at work."""
        return self in LIVE_STATES

    @property
    def terminal(self) -> bool:
        """The attempt ended: this is its outcome."""
        return self in TERMINAL_STATES


QUEUED, RUNNING, PAUSED, STOPPING = JobState.QUEUED, JobState.RUNNING, JobState.PAUSED, JobState.STOPPING
STOPPED, FINISHED, FAILED, KILLED = JobState.STOPPED, JobState.FINISHED, JobState.FAILED, JobState.KILLED
STATES = tuple(JobState)
LIVE_STATES = frozenset({QUEUED, RUNNING, PAUSED, STOPPING})
TERMINAL_STATES = frozenset({STOPPED, FINISHED, FAILED, KILLED})
BACKENDS = ("local", "slurm")  # where a job's process runs (jobs/backends)


@dataclass
class JobRecord:
    """The content of ``job.json``."""

    id: str
    kind: str
    config: dict[str, Any] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    code: dict[str, Any] = field(default_factory=dict)  # {"root", "commit", "dirty"}
    state: JobState = QUEUED
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
    prior_s: float = 0.0  # training time of the earlier attempts (queued and paused time excluded)
    exit_code: int | None = None
    error: str | None = None
    cause: dict[str, Any] | None = None  # why it failed: jobs.triage.Cause.to_json() (code, reason, summary, fix...)
    progress: dict[str, Any] = field(default_factory=dict)
    # where the job runs: "local" (a detached process group here) or "slurm" (a batch job; see ``slurm``)
    backend: str = "local"
    # Slurm only: {"job_id", "options", "history" (earlier job ids), "nodes", "state" (last seen), "shared_fs"}
    slurm: dict[str, Any] = field(default_factory=dict)
    requeues: int = 0  # times the job checkpointed at a walltime warning and was requeued (Slurm)
    schema: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        if not isinstance(data, dict) or "id" not in data or "kind" not in data:
            raise NcanvasError("job.json is not an ncanvas run record")
        schema = data.get("schema", 1)
        if isinstance(schema, int) and schema > SCHEMA_VERSION:  # a newer ncanvas wrote it: say so first
            raise NcanvasError(f"job.json has schema {schema}; this ncanvas reads up to {SCHEMA_VERSION}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key, value in known.items():  # a hand-edited or foreign file: one clear error, never a TypeError later
            types, optional = _FIELD_TYPES[key]
            ok = (value is None and optional) or (isinstance(value, types) and not (
                isinstance(value, bool) and bool not in types))
            if not ok:
                raise NcanvasError(f"job.json: {key!r} should be {_FIELD_NAMES[key]}; got {value!r:.60}")
        if known.get("state", QUEUED) not in STATES:
            raise NcanvasError(f"job.json: unknown state {known['state']!r}")
        if known.get("backend", "local") not in BACKENDS:
            raise NcanvasError(f"job.json: unknown backend {known['backend']!r}; this ncanvas knows {', '.join(BACKENDS)}")
        known["state"] = JobState(known.get("state", QUEUED))
        return cls(**known)


# field -> (accepted JSON types, may be null); checked when a record is read
_FIELD_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": ((str,), False), "kind": ((str,), False), "config": ((dict,), False), "argv": ((list,), False),
    "code": ((dict,), False), "state": ((str,), False), "created": ((int, float), False),
    "started": ((int, float), True), "ended": ((int, float), True), "pid": ((int,), True), "pgid": ((int,), True),
    "gpu": ((str,), False), "nproc": ((int,), False), "after": ((str,), True), "max_per_gpu": ((int,), False),
    "resume": ((bool,), False), "attempts": ((int,), False), "prior_s": ((int, float), False), "exit_code": ((int,), True), "error": ((str,), True),
    "cause": ((dict,), True), "progress": ((dict,), False), "schema": ((int,), False),
    "backend": ((str,), False), "slurm": ((dict,), False), "requeues": ((int,), False),
}
_TYPE_WORDS = {str: "a string", dict: "an object", list: "a list", int: "an integer", bool: "true or false"}
_FIELD_NAMES = {k: ("a number" if float in types else _TYPE_WORDS[types[0]]) + (" or null" if optional else "")
                for k, (types, optional) in _FIELD_TYPES.items()}


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
        left = " (its folders, without job.json, are left from a creation that failed: ncanvas jobs rm " \
               f"{job_id} removes them)" if run.log_dir.is_dir() or run.ckpt_dir.is_dir() else ""
        raise JobNotFound(f"no job {job_id!r} in {ws.root}{left}")
    rec = read_record(run.job_json)
    if rec.id != job_id:  # a copied or renamed folder: the folder name is the job's identity
        raise NcanvasError(f"{run.job_json} belongs to job {rec.id!r}, not {job_id!r}")
    return rec


LEFTOVER_AGE_S = 10.0  # a run folder without job.json younger than this may be a job being created right now


def unreadable_jobs(ws: Workspace) -> list[tuple[str, str]]:
    """``(id, why)`` for every run folder of a valid id whose record cannot be read: invalid JSON, a newer schema,
    a record of another id, or no ``job.json`` at all (a creation that failed half-way, older than a few seconds)."""
    out = []
    for job_id in ws.job_ids():
        try:
            load_job(ws, job_id)
        except NcanvasError as e:
            out.append((job_id, str(e)))
    known = set(ws.job_ids())
    for folder in (ws.logs, ws.checkpoints):
        for p in (sorted(folder.iterdir()) if folder.is_dir() else ()):
            if p.name in known or not JOB_ID_RE.match(p.name) or not (p.is_dir() or p.is_symlink()):
                continue
            try:
                young = time.time() - p.lstat().st_mtime < LEFTOVER_AGE_S
            except OSError:
                continue
            if not young:
                known.add(p.name)
                out.append((p.name, f"no job.json in {ws.logs / p.name} (a leftover folder; ncanvas jobs rm "
                                     f"{p.name} removes it)"))
    return out


def list_jobs(ws: Workspace) -> list[JobRecord]:
    """Every readable run record in the workspace, oldest first; unreadable ones are skipped (see
    :func:`unreadable_jobs`)."""
    out = []
    for job_id in ws.job_ids():
        try:
            out.append(load_job(ws, job_id))
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
