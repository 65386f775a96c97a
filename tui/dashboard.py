"""The Jobs pane: jobs table, curves of the selected jobs, log tail, and the job-control keys.

Attributes down: the app hands it statuses, metric snapshots and log lines from the watcher. Messages up: the
table announces selection changes. Supervisor verbs run in thread workers (they signal and wait on processes).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from core.errors import NcanvasError, NoCheckpointToResume
from core.paths import Workspace
from core.runrec import FAILED, LIVE_STATES, PAUSED
from tui.messages import ActionDone, LogLines, SelectionChanged
from tui.screens.confirm import ConfirmScreen
from tui.screens.details import DetailsScreen
from tui.screens.new_job import NewJobRequest, NewJobScreen
from tui.watcher import SMOOTHING_WEIGHTS
from tui.widgets.field import Field
from tui.widgets.jobs_table import JobsTable
from tui.widgets.log_tail import LogTail
from tui.widgets.plots import CurveData, Curves

SMOOTHING_STEPS = (0.0, *SMOOTHING_WEIGHTS)


class Dashboard(Vertical):
    """The default pane. ``ws`` is the workspace; ``watcher`` (a :class:`tui.watcher.Watcher`) is set by the app."""

    BINDINGS = [
        Binding("n", "new_job", "New", tooltip="New job: a form built from the kind's options, checked before it "
                "starts"),
        Binding("p", "pause", "Pause/cont", tooltip="Pause (SIGSTOP) or continue the selected job; a paused GPU job "
                "keeps its memory"),
        Binding("s", "stop", "Stop", tooltip="Stop the selected job: it saves latest.pt, then exits"),
        Binding("r", "resume", "Resume", tooltip="Resume the selected job from latest.pt: its curve continues"),
        Binding("k", "kill", "Kill", tooltip="Kill the selected job (asks first): SIGTERM, then SIGKILL"),
        Binding("d", "delete", "Delete", tooltip="Delete the selected job's logs and checkpoints (asks first)"),
        Binding("enter", "details", "Details", show=False, tooltip="Job details: config, checkpoints, events, "
                "failure reason, last log lines"),
        Binding("slash", "filter", "Filter", tooltip="Filter the jobs by id, kind or state words (esc clears)"),
        Binding("l", "log_y", "Log-y", tooltip="Log-scale y axes on the curves (perplexity always has one)"),
        Binding("e", "smoothing(1)", "EMA+", show=False, tooltip="More EMA smoothing of the train curves"),
        Binding("E", "smoothing(-1)", "EMA-", show=False, tooltip="Less EMA smoothing of the train curves"),
        Binding("0", "smoothing(0)", "No EMA", show=False, tooltip="No smoothing: the raw train curves"),
        Binding("m", "toggle_metric", "Metric", tooltip="Next metric in the second plot: each key the job "
                "logs (accuracy, perplexity, lr, speed, ...), then off"),
    ]

    DEFAULT_CSS = """
    Dashboard #filter { display: none; height: 3; }
    Dashboard #filter.-shown { display: block; }
    Dashboard #empty { height: auto; padding: 0 1 1 4; color: $text-muted; display: none; }
    Dashboard #empty.-shown { display: block; }
    Dashboard Curves { height: 3fr; }
    Dashboard LogTail { height: 1fr; }
    """

    def __init__(self, ws: Workspace, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ws = ws
        self.watcher: Any = None
        self.statuses: list[Any] = []
        self.selection: tuple[str, ...] = ()
        self.needle = ""

    def compose(self) -> ComposeResult:
        yield Field(placeholder="filter jobs by id, kind or state (esc clears)", id="filter")
        yield JobsTable(id="jobs-table")
        yield Static("", id="empty")
        yield Curves(id="curves")
        yield LogTail(id="log")

    @property
    def table(self) -> JobsTable:
        return self.query_one(JobsTable)

    @property
    def curves(self) -> Curves:
        return self.query_one(Curves)

    # ----------------------------------------------------------------------------------- data in

    def show_statuses(self, statuses: list[Any]) -> None:
        before = {st.id: st.state for st in self.statuses}
        self.statuses = statuses
        self._show_rows()
        for st in statuses:  # a job that fails while the dashboard watches: say why and what to do, once
            if st.state == FAILED and before.get(st.id) in LIVE_STATES:
                self._notify_failure(st)

    def _notify_failure(self, st: Any) -> None:
        cause = st.cause or {}
        text = f"{st.id} failed: {cause.get('summary') or st.reason or 'see its log'}"
        if cause.get("fix"):
            text += f"\nfix: {cause['fix']}"
        self.notify(text, title="job failed", severity="error", timeout=20, markup=False)

    def _show_rows(self) -> None:
        self.table.show(self.statuses, self.needle)
        empty = self.query_one("#empty", Static)
        if not self.statuses:
            empty.update(Text.assemble("No jobs yet: press ", ("n", "bold"), " to start one (try the demo kind), "
                                       "or run ", ("ncanvas train demo", "bold"), " in a shell. Jobs keep running "
                                       "after you quit."))
        elif not self.table.row_count:
            empty.update(Text.assemble(f"No job matches {self.needle!r}: ", ("esc", "bold"), " clears the filter."))
        empty.set_class(not self.table.row_count, "-shown")

    def refresh_curves(self, changed: frozenset[str] | None = None) -> None:
        if self.watcher is None or (changed is not None and not changed & set(self.selection)):
            return
        kinds = {st.id: st.record.kind for st in self.statuses}
        first = self.selection[0] if self.selection else None
        names = self.watcher.metric_names(first) if first else []
        metric = self.curves.metric_for(kinds.get(first or ""), names)
        keys = ("loss",) if metric is None else ("loss", metric)
        skipped = [self.watcher.skipped(jid) for jid in self.selection]
        self.curves.set_data(CurveData(self.watcher.snapshot(self.selection, self.curves.smoothing, keys), kinds,
                                       names, (sum(s[0] for s in skipped), sum(s[1] for s in skipped))))

    def show_log(self, msg: LogLines) -> None:
        log = self.query_one(LogTail)
        if msg.job_id == self.table.current_id:
            log.show_lines(msg.job_id, msg.lines, msg.reset, msg.frame)

    def on_selection_changed(self, event: SelectionChanged) -> None:
        event.stop()
        self.selection = event.job_ids
        if self.watcher is not None:
            self.watcher.watch(event.job_ids, event.log_job)
        if event.log_job is None:
            self.query_one(LogTail).clear_job()
        self.refresh_curves()

    def status(self, job_id: str | None) -> Any:
        return next((st for st in self.statuses if st.id == job_id), None)

    # ----------------------------------------------------------------------------------- actions

    def _selected(self) -> str | None:
        jid = self.table.current_id
        if jid is None:
            self.notify("no job selected", severity="warning")
        return jid

    def action_new_job(self) -> None:
        current = self.status(self.table.current_id)
        self.app.push_screen(NewJobScreen(current.record.kind if current else "demo"), self._start)

    def _start(self, request: NewJobRequest | None) -> None:
        if request is not None:
            self.start_job(request)

    def action_pause(self) -> None:
        if (jid := self._selected()) is not None:
            st = self.status(jid)
            self.control("cont" if st is not None and st.state == PAUSED else "pause", jid)

    def action_stop(self) -> None:
        if (jid := self._selected()) is not None:
            self.control("stop", jid)

    def action_resume(self) -> None:
        if (jid := self._selected()) is not None:
            self.control("resume", jid)

    def action_kill(self) -> None:
        if (jid := self._selected()) is not None:
            self._confirm(f"Kill {jid}? (SIGTERM, then SIGKILL after 5 s)", "kill", jid)

    def action_delete(self) -> None:
        if (jid := self._selected()) is not None:
            self._confirm(f"Delete {jid}'s logs and checkpoints? This cannot be undone.", "remove", jid)

    def _confirm(self, question: str, verb: str, jid: str) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.control(verb, jid)

        self.app.push_screen(ConfirmScreen(question), answered)

    def action_details(self) -> None:
        if (jid := self._selected()) is not None:
            self.app.push_screen(DetailsScreen(self.ws, jid))

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_details()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("-shown")
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.needle = event.value.strip()
        self._show_rows()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.table.focus()

    def key_escape(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_class("-shown"):
            box.value = ""
            box.remove_class("-shown")
            self.table.focus()

    def action_log_y(self) -> None:
        self.curves.log_y = not self.curves.log_y

    def action_smoothing(self, direction: int) -> None:
        if direction == 0:
            self.curves.smoothing = 0.0
            return
        now = self.curves.smoothing
        i = min(range(len(SMOOTHING_STEPS)), key=lambda j: abs(SMOOTHING_STEPS[j] - now))
        i = max(0, min(len(SMOOTHING_STEPS) - 1, i + direction))
        self.curves.smoothing = SMOOTHING_STEPS[i]
        self.refresh_curves()  # the new weight's full-resolution curve from the watcher
        self.notify(f"EMA smoothing {self.curves.smoothing:.2f}", timeout=1.5)

    def action_toggle_metric(self) -> None:
        first = self.selection[0] if self.selection else None
        st = self.status(first)
        names = self.watcher.metric_names(first) if self.watcher is not None and first else []
        metric = self.curves.cycle_metric(st.record.kind if st else None, names)
        self.refresh_curves()
        self.notify(f"metric plot: {metric or 'off'}", timeout=1.5)

    # ----------------------------------------------------------------------------------- workers

    @work(thread=True, group="control")
    def control(self, verb: str, job_id: str) -> None:
        """Run one supervisor verb (pause, cont, stop, resume, kill, remove) off the event loop."""
        from jobs import supervisor

        try:
            if verb == "resume_from_scratch":
                text = supervisor.resume(self.ws, job_id, from_scratch=True)
            else:
                text = getattr(supervisor, verb)(self.ws, job_id)
            self.post_message(ActionDone(text))
        except NoCheckpointToResume:
            self.app.call_from_thread(
                self._confirm, f"{job_id} has no latest.pt to resume from. Start it over from step 0? (Its earlier "
                "curve is kept as metrics.attempt-N.jsonl.)", "resume_from_scratch", job_id)
        except NcanvasError as e:
            self.post_message(ActionDone(str(e), error=True))
        except Exception as e:  # noqa: BLE001 - the dashboard reports, never crashes
            self.post_message(ActionDone(f"{verb} {job_id} failed: {type(e).__name__}: {e}", error=True))

    @work(thread=True, group="control")
    def start_job(self, request: NewJobRequest) -> None:
        from jobs import supervisor

        try:
            started = supervisor.start_job(self.ws, request.kind, request.config, gpu=request.gpu)
            rec = started[0] if isinstance(started, tuple) else started
            self.post_message(ActionDone(f"started {rec.id}"))
            self.app.call_from_thread(self._select_when_listed, rec.id)
        except NcanvasError as e:
            self.post_message(ActionDone(str(e), error=True))
        except Exception as e:  # noqa: BLE001
            self.post_message(ActionDone(f"start failed: {type(e).__name__}: {e}", error=True))

    def _select_when_listed(self, job_id: str, tries: int = 20) -> None:
        if self.status(job_id) is not None:
            self.table.select(job_id)
        elif tries > 0:
            self.set_timer(0.2, lambda: self._select_when_listed(job_id, tries - 1))

    def on_action_done(self, event: ActionDone) -> None:
        event.stop()
        self.notify(event.text, severity="error" if event.error else "information",
                    timeout=8 if event.error else 4)
        if self.watcher is not None:
            self.watcher.poke()
