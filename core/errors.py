"""User-facing errors: one clear line, no traceback."""

from __future__ import annotations


class NcanvasError(Exception):
    """An error whose message is meant for the user as a single line (CLI) or notification (TUI)."""


class BadJobId(NcanvasError):
    """A job id that is not ``[a-z0-9-]+``."""


class JobNotFound(NcanvasError):
    """No run directory for this job id."""


class CheckpointError(NcanvasError):
    """A file that is not a usable ncanvas checkpoint (truncated, foreign, wrong kind or architecture)."""


class NoCheckpointToResume(NcanvasError):
    """A resume of a job that logged steps but has no ``latest.pt``: it can only start again from step 0, which
    must be asked for (``jobs resume --from-scratch``; in the dashboard, a confirmation), since the earlier
    attempt's metric rows are then archived instead of continued."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"{job_id} has no latest.pt to resume from; start it again from step 0 with: "
                         f"ncanvas jobs resume {job_id} --from-scratch (its metric rows so far are archived)")
