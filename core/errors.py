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
