"""The ``ncanvas`` dashboard: the Textual app and :func:`run_app`.

Module scope imports Textual and ncanvas's light modules only; torch and friends load inside thread workers of the
inference panes, so the first frame comes fast (a test checks ``torch`` is not imported by then).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widgets import Footer, TabbedContent, TabPane, Tabs

from core.errors import NcanvasError
from core.paths import Workspace
from core.runrec import PAUSED
from tui import guard
from tui.commands import NcanvasCommands
from tui.dashboard import Dashboard
from tui.keys import ALT_DIGIT_CHARACTERS
from tui.messages import (
    ArtAnalyzed,
    Classified,
    GpuUpdated,
    JobsUpdated,
    LogLines,
    MetricsUpdated,
    WatcherError,
)
from tui.panes import PANES
from tui.panes.base import InferencePane
from tui.panes.explain import ExplainPane
from tui.watcher import Watcher, WatcherConfig
from tui.widgets.footer import MainScreen
from tui.widgets.status_bar import StatusBar

PANE_TITLES = (("jobs", "Jobs"), *((p.pane_id, p.title) for p in PANES))


def pane_bindings(n: int, pane_id: str, title: str) -> list[Binding]:
    """The keys of pane ``n``: the digit (where no text field takes it), and F``n`` / alt+``n`` from anywhere."""
    anywhere = f"f{n},alt+{n}" + (f",{ALT_DIGIT_CHARACTERS[n - 1]}" if n <= len(ALT_DIGIT_CHARACTERS) else "")
    tip = f"Show the {title} pane"
    return [Binding(str(n), f"pane('{pane_id}')", f"{title} pane", show=False, tooltip=tip),
            Binding(anywhere, f"pane('{pane_id}')", f"{title} pane", show=False, priority=True, tooltip=tip)]


class NcanvasApp(App[None]):
    """The dashboard. Side effects are injectable so tests and snapshots are deterministic.

    Args:
        ws: the workspace whose jobs are shown.
        theme: a Textual theme name (``--theme``).
        host: the host name in the top bar (default: this machine's).
        list_status: ``ws -> [JobStatus]`` (default: ``jobs.supervisor.list_status``).
        gpu_stats: ``() -> [GpuStat]`` (default: ``core.gpu.gpu_stats``; ``[]`` shows N/A).
        watcher_config: polling periods and caps of the watcher thread.
        show_root: show the workspace root in the top bar (off in tests: temporary paths vary).
        handle_signals: end cleanly on SIGTERM / SIGHUP (the terminal restored, exit status 128 + signal); on for
            the real dashboard, off under tests (the test runner keeps its own handlers).
    """

    CSS_PATH = "app.tcss"
    TITLE = "ncanvas"
    COMMANDS = App.COMMANDS | {NcanvasCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit", tooltip="Quit the dashboard (jobs keep running); ctrl+q quits from a text field"),
        Binding("question_mark", "help", "Help", tooltip="Show every key (esc closes it)"),
        # digits switch panes where no text field has focus (esc leaves one); F1..F5 and alt+digit from anywhere
        *[b for i, (pane_id, title) in enumerate(PANE_TITLES) for b in pane_bindings(i + 1, pane_id, title)],
    ]

    def __init__(self, ws: Workspace, *, theme: str | None = None, host: str | None = None,
                 list_status: Callable[[Workspace], list[Any]] | None = None,
                 gpu_stats: Callable[[], list[Any]] | None = None,
                 watcher_config: WatcherConfig | None = None, show_root: bool = False,
                 handle_signals: bool = False) -> None:
        super().__init__()
        self.ws = ws
        self.show_root = show_root
        self.handle_signals = handle_signals
        self.crash_line: str | None = None  # set when the app had to stop: the one line run_app prints
        self._reported: dict[str, float] = {}  # error text -> when it was last reported
        self.host = host if host is not None else socket.gethostname()
        kwargs: dict[str, Any] = {}
        if list_status is not None:
            kwargs["list_status"] = list_status
        if gpu_stats is not None:
            kwargs["gpu_stats"] = gpu_stats
        self.watcher = Watcher(ws, self.post_message, watcher_config or WatcherConfig(), **kwargs)
        if theme:
            if theme not in self.available_themes:
                raise NcanvasError(f"unknown theme {theme!r}; themes: {', '.join(sorted(self.available_themes))}")
            self.theme = theme

    def get_default_screen(self) -> MainScreen:
        return MainScreen(id="_default")

    def compose(self) -> ComposeResult:
        bar = StatusBar(self.host, id="status-bar")
        bar.workspace = str(self.ws.root) if self.show_root else ""
        yield bar
        with TabbedContent(initial="jobs", id="panes"):
            with TabPane("1 Jobs", id="jobs"):
                yield Dashboard(self.ws, id="dashboard")
            for i, pane in enumerate(PANES):
                with TabPane(f"{i + 2} {pane.title}", id=pane.pane_id):
                    yield pane(self.ws)
        yield Footer()

    def on_mount(self) -> None:
        # the tab bar takes no focus: a Tab stop there would leave the pane's keys (and the footer) behind; the
        # tabs are switched by digits, F1..F5, alt+digit or a click
        self.query_one(Tabs).can_focus = False
        self.query_one(Dashboard).watcher = self.watcher
        self.watcher.start()
        self.query_one("JobsTable").focus()
        if self.handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, self._signalled, sig)
        if self.is_web:  # a browser session of `ncanvas web`: it ends with its server
            self._server_pid = os.getppid()
            self.set_interval(1.0, self.check_server)

    def check_server(self) -> None:
        """End a web session whose server is gone (killed, crashed): nobody reads its screen any more, and its
        input is closed. The server itself stops its sessions when it shuts down (``tui.web``)."""
        if os.getppid() != self._server_pid:
            self.exit(return_code=1)

    def on_unmount(self) -> None:
        self.watcher.stop()

    def _signalled(self, sig: int) -> None:
        self.exit(return_code=128 + sig)  # the driver restores the terminal on the way out

    # ----------------------------------------------------------------------------------- errors

    def report_error(self, error: BaseException, what: str) -> None:
        """The last resort for a bug that escaped its handler: the traceback to the error log, one notification
        (the same error again only after 30 s), and the app goes on."""
        text = f"{what} failed: {guard.one_line(error)}"
        now = time.monotonic()
        if now - self._reported.get(text, -1e9) < 30.0:
            return
        self._reported[text] = now
        path = guard.write_traceback(self.ws.logs, error, what)
        where = f" (traceback in {path})" if path else ""
        self.notify(text + where, severity="error", timeout=10)

    def _handle_exception(self, error: Exception) -> None:
        # Textual's own handler (it ends the app) for what nothing above caught: one line instead of a screenful
        # of traceback with locals, the traceback in the error log, and run_app exits non-zero
        path = guard.write_traceback(self.ws.logs, error, "the dashboard stopped")
        if self.crash_line is None:
            self.crash_line = f"ncanvas: the dashboard stopped: {guard.one_line(error)}" + (
                f" (traceback in {path})" if path else "")
        super()._handle_exception(error)
        self._exit_renderables[:] = [Text(self.crash_line)]

    async def run_action(self, action: Any, *args: Any, **kwargs: Any) -> bool:
        """Every key, palette entry and click action: a bug in one is a notification, not the end of the app."""
        try:
            return await super().run_action(action, *args, **kwargs)
        except Exception as e:  # noqa: BLE001 - the last resort for key sequences
            self.report_error(e, f"action {action}")
            return True

    def on_resize(self) -> None:
        # small terminals (80x24 over SSH): tighter layout, set by class so the CSS decides what shrinks
        self.screen.set_class(self.size.height < 32 or self.size.width < 100, "-compact")

    # ----------------------------------------------------------------------------------- watcher messages

    def _route(self, deliver: Callable[[], None], what: str = "showing an update") -> None:
        # watcher messages can still arrive while the app shuts down and its widgets are being removed
        if not self.is_running:
            return
        try:
            deliver()
        except NoMatches:
            pass
        except Exception as e:  # noqa: BLE001 - whatever a file held, the dashboard stays up
            self.report_error(e, what)

    def on_jobs_updated(self, msg: JobsUpdated) -> None:
        def deliver() -> None:
            bar = self.query_one(StatusBar)
            bar.running = sum(1 for st in msg.statuses if st.alive and st.state != PAUSED)
            bar.paused = sum(1 for st in msg.statuses if st.state == PAUSED)
            self.query_one(Dashboard).show_statuses(msg.statuses)

        self._route(deliver, "showing the job list")

    def on_watcher_error(self, msg: WatcherError) -> None:
        self._route(lambda: self.notify(msg.text, severity="warning", timeout=8))

    def on_gpu_updated(self, msg: GpuUpdated) -> None:
        self._route(lambda: setattr(self.query_one(StatusBar), "gpus", msg.stats), "showing GPU stats")

    def on_metrics_updated(self, msg: MetricsUpdated) -> None:
        self._route(lambda: self.query_one(Dashboard).refresh_curves(msg.job_ids), "showing the curves")

    def on_log_lines(self, msg: LogLines) -> None:
        self._route(lambda: self.query_one(Dashboard).show_log(msg), "showing the log")

    def on_classified(self, msg: Classified) -> None:
        def deliver() -> None:
            for pane in self.query(".uses-classification").results(InferencePane):
                pane.use_classification(msg)

        self._route(deliver, "passing the classification on")

    def on_art_analyzed(self, msg: ArtAnalyzed) -> None:
        self._route(lambda: self.query_one(ExplainPane).use_analysis(msg))

    # ----------------------------------------------------------------------------------- actions

    def action_pane(self, pane_id: str) -> None:
        self.query_one(TabbedContent).active = pane_id
        self._focus_pane(pane_id)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id:  # also after a mouse click on a tab
            self._focus_pane(event.pane.id)

    def _focus_pane(self, pane_id: str) -> None:
        # focus must move into the new pane, or the focused widget of the old one pulls its pane back
        tabs = self.query_one(TabbedContent)
        pane = tabs.get_pane(pane_id)
        if self.focused is not None and pane in self.focused.ancestors:
            return
        shown = (w for w in pane.query("*") if w.focusable and all(a.display for a in w.ancestors_with_self))
        target = next(shown, None)  # the pane itself (its keys act at once), or the jobs table; never a hidden box
        if target is not None:
            target.focus()

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        self.push_screen(HelpScreen())


def run_dashboard(app: NcanvasApp) -> int:
    """Run ``app`` in this terminal and return its exit status: 0 after ``q``; 128 + the signal after SIGTERM or
    SIGHUP; 1 when an error stopped it, after one line on stderr saying where the traceback went. The driver
    restores the terminal (alternate screen, mouse reporting) on every one of these ways out."""
    app.run()  # on the way out Textual prints the exit renderables (our one crash line) to stderr
    if app.crash_line is not None:
        return app.return_code or 1
    return app.return_code or 0


def run_app(home: str | None = None, theme: str | None = None) -> None:
    """Open the dashboard on the workspace ``home`` (resolved as everywhere: --home, NCANVAS_HOME, ...)."""
    ws = Workspace.resolve(home).ensure()
    code = run_dashboard(NcanvasApp(ws, theme=theme, show_root=True, handle_signals=True))
    if code:
        sys.exit(code)
