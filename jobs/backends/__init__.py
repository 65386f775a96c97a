"""Backends: where a job's process runs and how the verbs reach it. No torch.

``local`` is the supervisor's own code (:mod:`jobs.supervisor`): a detached process group on this machine, verbs
as signals to the group, liveness by flock on ``run.lock``. Every other backend implements :class:`Backend`, and
the supervisor hands a job to it by its record's ``backend`` field before doing anything local, so the CLI, the
dashboard and the panes call the same functions whatever runs the job. Both backends run the same entry point
(``python -m jobs.<kind> --run-dir logs/<id>``) into the same run folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from core.errors import NcanvasError
from core.runrec import BACKENDS

if TYPE_CHECKING:
    from core.paths import Workspace
    from core.runrec import JobRecord
    from jobs.supervisor import JobStatus


class Backend(Protocol):
    """The verbs a non-local backend implements (see :mod:`jobs.supervisor` for what each means)."""

    name: str

    def submit(self, ws: Workspace, kind: str, cfg: Any, **how: Any) -> JobRecord:
        """Create the run directory and record, and start (or queue) the job; nothing is left on a refusal."""

    def status(self, ws: Workspace, rec: JobRecord) -> JobStatus:
        """The effective state, liveness and reason of one job."""

    def prefetch(self, recs: list[JobRecord]) -> None:
        """Ask about many jobs at once before :meth:`status` is called for each (the dashboard's table)."""

    def pause(self, ws: Workspace, job_id: str) -> str: ...

    def cont(self, ws: Workspace, job_id: str) -> str: ...

    def stop(self, ws: Workspace, job_id: str, wait: bool, timeout: float) -> str: ...

    def kill(self, ws: Workspace, job_id: str, grace: float) -> str: ...

    def resume(self, ws: Workspace, job_id: str, from_scratch: bool = False) -> str: ...

    def cancel(self, ws: Workspace, rec: JobRecord, grace: float = 5.0) -> None:
        """End whatever of the job still runs or waits (``rm --force``), without touching its record."""


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (``slurm``); ``local`` has no object: it is the supervisor itself."""
    if name == "slurm":
        from jobs.backends.slurm import SLURM

        return SLURM
    raise NcanvasError(f"unknown backend {name!r}; backends: {', '.join(BACKENDS)}")
