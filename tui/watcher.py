"""The watcher thread: tails each watched job's ``metrics.jsonl`` and ``stdout.log`` by byte offset.

It never touches widgets. It posts coalesced messages (``tui.messages``) to a target (the app), at most a few
per second, and keeps a bounded :class:`core.metrics.RunSeries` per watched job that the UI copies through
:meth:`Watcher.snapshot`. A metrics file larger than ``tail_bytes`` is read in full only in its last few MB;
before that it is sampled (:mod:`core.overview`: every val row and event, ``overview_points`` train rows), so a
1 GB log shows its whole curve after one fast scan, and each series is capped, so memory stays bounded for hours.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.logtext import LogTailer
from core.metrics import MetricsTailer, RunSeries
from core.paths import Workspace
from tui.messages import GpuUpdated, JobsUpdated, LogLines, MetricsUpdated, WatcherError

# EMA weights the dashboard offers (e / E keys); each is tracked on the raw points of the plotted train series
SMOOTHING_WEIGHTS = (0.3, 0.6, 0.8, 0.9, 0.95, 0.99)
SMOOTHED_METRICS = ("loss", "acc", "ppl")

Post = Callable[[Any], Any]


def _default_list_status(ws: Workspace) -> list[Any]:
    from jobs.supervisor import list_status

    return list_status(ws, unreadable=True)


def _default_gpu_stats() -> list[Any]:
    from core.gpu import gpu_stats

    return gpu_stats()


@dataclass
class _Tail:
    """Tailing state of one job's metrics."""

    tailer: MetricsTailer
    series: RunSeries
    rows_seen: int = 0


@dataclass
class WatcherConfig:
    interval: float = 0.25  # metrics/log polling period (and the most often curves are told to redraw)
    status_interval: float = 1.0  # job table refresh period
    gpu_interval: float = 2.0
    tail_bytes: int = 8 << 20  # on first open, read only this much of a metrics file's end in full ...
    overview_points: int = 4000  # ... and sample about this many train points from the part before it
    log_tail_bytes: int = 64 << 10
    cap: int = 4000  # points kept per series (plotext slows and leaks with long series)
    read_budget: int = 4  # tailer polls per job per tick, so one huge backlog cannot starve the others
    error_repeat_s: float = 60.0  # the same failing poll is reported again after this long


@dataclass
class Watcher:
    """Background tailer for the dashboard. Thread-safe setters; call :meth:`start` once and :meth:`stop`."""

    ws: Workspace
    post: Post
    config: WatcherConfig = field(default_factory=WatcherConfig)
    list_status: Callable[[Workspace], list[Any]] = _default_list_status
    gpu_stats: Callable[[], list[Any]] = _default_gpu_stats

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._tails: dict[str, _Tail] = {}
        self._watched: tuple[str, ...] = ()
        self._log_job: str | None = None
        self._log: LogTailer | None = None
        self._thread: threading.Thread | None = None
        self._last_frame = ""
        self.errors = 0  # polls that raised (each new error is posted as a WatcherError, repeats only now and then)
        self._reported: dict[str, tuple[str, float]] = {}  # what -> (error text, when it was last posted)

    # ----------------------------------------------------------------------------------- control (any thread)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ncanvas-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def poke(self) -> None:
        """Refresh statuses now (after a supervisor call) instead of at the next period."""
        self._wake.set()

    def watch(self, job_ids: tuple[str, ...], log_job: str | None) -> None:
        """Tail the metrics of ``job_ids`` and the log of ``log_job``; others are dropped (memory stays bounded)."""
        with self._lock:
            self._watched = tuple(dict.fromkeys(job_ids))
            for gone in set(self._tails) - set(self._watched):
                del self._tails[gone]
            if log_job != self._log_job:
                self._log_job, self._log = log_job, None
        self._wake.set()

    def snapshot(self, job_ids: tuple[str, ...] | None = None, smoothing: float = 0.0,
                 metrics: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
        """A copy of the series of watched jobs: ``{job_id: {"train/loss": (steps, values, smoothed), ...}}``;
        ``smoothed`` is ``{smoothing: curve}`` for the train series that track that EMA weight on their raw points
        (:data:`SMOOTHING_WEIGHTS`), else empty. ``metrics`` limits the copy to those metric keys (what is drawn)."""
        with self._lock:
            ids = self._watched if job_ids is None else job_ids
            out = {}
            for jid in ids:
                tail = self._tails.get(jid)
                if tail is not None:
                    out[jid] = {k: (list(s.steps), list(s.values),
                                    {smoothing: list(s.smoothed(smoothing))} if smoothing in s.smooth_weights else {})
                                for k, s in tail.series.series.items()
                                if metrics is None or k.split("/", 1)[1] in metrics}
            return out

    def metric_names(self, job_id: str) -> list[str]:
        """The metric keys a watched job has logged so far (``loss``, ``acc``, ``grad_norm``, ...)."""
        with self._lock:
            tail = self._tails.get(job_id)
            return tail.series.metric_names() if tail else []

    def skipped(self, job_id: str) -> tuple[int, int]:
        """(malformed lines, non-finite values) read so far from a watched job's metrics file."""
        with self._lock:
            tail = self._tails.get(job_id)
            return (tail.tailer.bad_lines, tail.series.nonfinite) if tail else (0, 0)

    def events(self, job_id: str) -> list[dict[str, Any]]:
        with self._lock:
            tail = self._tails.get(job_id)
            return list(tail.series.events) if tail else []

    # ----------------------------------------------------------------------------------- the thread

    def _run(self) -> None:
        cfg = self.config
        next_status = next_gpu = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            poked = self._wake.is_set()
            self._wake.clear()
            if poked or now >= next_status:
                self._safely(lambda: self.post(JobsUpdated(self.list_status(self.ws))), "job list")
                next_status = now + cfg.status_interval
            if now >= next_gpu:
                self._safely(lambda: self.post(GpuUpdated(self.gpu_stats())), "GPU stats")
                next_gpu = now + cfg.gpu_interval
            self._safely(self._poll_metrics, "metrics")
            self._safely(self._poll_log, "log")
            # while a big file's start is being sampled, go on at once (a short pause lets the UI thread run)
            self._wake.wait(0.02 if self._sampling() else cfg.interval)

    def _sampling(self) -> bool:
        with self._lock:
            return any(t.tailer.sampling for t in self._tails.values())

    def _safely(self, fn: Callable[[], Any], what: str) -> None:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - a bad file must not kill the watcher; the next tick retries
            self.errors += 1
            text = f"reading {what} failed: {e}" if str(e) else f"reading {what} failed: {type(e).__name__}"
            now = time.monotonic()
            said, at = self._reported.get(what, ("", 0.0))
            if text != said or now - at > self.config.error_repeat_s:
                self._reported[what] = (text, now)  # said once per source, again only if it persists
                self.post(WatcherError(text))

    def _poll_metrics(self) -> None:
        with self._lock:
            watched = self._watched
            for jid in watched:
                if jid not in self._tails:
                    path = self.ws.run(jid).metrics
                    self._tails[jid] = _Tail(MetricsTailer(path, start_at_tail_bytes=self.config.tail_bytes,
                                                           overview_points=self.config.overview_points),
                                             RunSeries(cap=self.config.cap, smooth_weights=SMOOTHING_WEIGHTS))
            tails = [(jid, self._tails[jid]) for jid in watched]
        changed = set()
        for jid, tail in tails:
            rows: list[dict[str, Any]] = []
            reset = False
            for _ in range(self.config.read_budget):
                before = tail.tailer.offset
                res = tail.tailer.poll()
                reset |= res.reset
                if res.reset:
                    rows.clear()
                rows.extend(res.rows)
                if tail.tailer.offset == before:
                    break
            if rows or reset:
                with self._lock:
                    if reset:
                        tail.series = RunSeries(cap=self.config.cap, smooth_weights=SMOOTHING_WEIGHTS)
                    tail.series.feed(rows)
                    tail.rows_seen += len(rows)
                changed.add(jid)
        if changed:
            self.post(MetricsUpdated(frozenset(changed)))

    def _poll_log(self) -> None:
        with self._lock:
            jid = self._log_job
            if jid is None:
                return
            if self._log is None:
                self._log = LogTailer(self.ws.run(jid).stdout, start_at_tail_bytes=self.config.log_tail_bytes)
                first = True
            else:
                first = False
            log = self._log
        lines, reset = log.poll()
        frame = log.current_frame()
        if lines or reset or first or frame != self._last_frame:
            self._last_frame = frame
            self.post(LogLines(jid, lines[-2000:], reset or first, frame))
