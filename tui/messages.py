"""Messages shared across the dashboard: small dataclasses, posted up the DOM (or from the watcher thread).

High-rate messages override ``can_replace`` so a burst collapses to the latest one in the queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


@dataclass
class JobsUpdated(Message):
    """A fresh status of every job (``jobs.supervisor.JobStatus`` list), oldest first."""

    statuses: list[Any]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JobsUpdated)


@dataclass
class MetricsUpdated(Message):
    """New metric rows arrived for some watched jobs; the receiver asks the watcher for a snapshot."""

    job_ids: frozenset[str] = field(default_factory=frozenset)

    def can_replace(self, message: Message) -> bool:
        # Textual asks the older queued message whether the newer one (``message``) may supersede it; the newer
        # one survives, so it takes over this one's job ids
        if isinstance(message, MetricsUpdated):
            message.job_ids = message.job_ids | self.job_ids
            return True
        return False


@dataclass
class LogLines(Message):
    """New lines of one job's ``stdout.log``; ``reset`` when the file was truncated or replaced."""

    job_id: str
    lines: list[str]
    reset: bool = False
    frame: str = ""  # the unfinished last line (a live progress bar), shown after the lines


@dataclass
class WatcherError(Message):
    """A poll of the watcher thread failed (it goes on and retries): one line for a notification."""

    text: str


@dataclass
class GpuUpdated(Message):
    """GPU statistics (``core.gpu.GpuStat`` list; empty without NVML)."""

    stats: list[Any]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, GpuUpdated)


@dataclass
class SelectionChanged(Message):
    """The jobs shown in the curves (cursor row first, then marked rows) and the one whose log is tailed."""

    job_ids: tuple[str, ...]
    log_job: str | None


@dataclass
class JobAction(Message):
    """A request to run a supervisor verb on a job (handled by the dashboard in a thread worker)."""

    verb: str
    job_id: str | None = None


@dataclass
class ActionDone(Message):
    """A supervisor call finished: its one-line message, or an error line."""

    text: str
    error: bool = False


@dataclass
class Classified(Message):
    """The Classify pane finished: other panes may reuse the checkpoint, image and top classes."""

    checkpoint: str
    image: str
    top: list[tuple[str, float]]
    invert: bool = False  # the image was inverted (its polarity is the opposite of the training images')


@dataclass
class ArtAnalyzed(Message):
    """The Analyze pane classified a painting: ``prompt`` (the dataset's format) is what the explainers read."""

    checkpoint: str
    image: str
    prompt: str
