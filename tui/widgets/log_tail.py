"""The tail of the selected job's ``stdout.log``: bounded, ``\\r`` frames already collapsed by the watcher."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Log


class LogTail(Log):
    """A bounded log view. ``follow`` keeps it scrolled to the end (``f`` toggles)."""

    BINDINGS = [Binding("f", "toggle_follow", "Follow", tooltip="Follow the end of the log on / off")]

    DEFAULT_CSS = """
    LogTail { height: 1fr; min-height: 3; border: round $panel; }
    LogTail:focus { border: round $accent; }
    """

    follow: reactive[bool] = reactive(True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_lines=2000, auto_scroll=True, **kwargs)
        self.job_id: str | None = None
        self._frame = ""
        self.border_title = "log"

    def show_lines(self, job_id: str, lines: list[str], reset: bool, frame: str = "") -> None:
        """Append ``lines`` of ``job_id`` (switching jobs or a reset clears the view first)."""
        if reset or job_id != self.job_id:
            self.clear()
            self.job_id = job_id
        if lines:
            self.write_lines(lines, scroll_end=self.follow)
        # a live progress bar (the unfinished last line) goes under the border, replaced in place
        self._frame = frame[-120:]
        self._title()

    def clear_job(self) -> None:
        self.clear()
        self.job_id, self._frame = None, ""
        self._title()

    def watch_follow(self, follow: bool) -> None:
        self.auto_scroll = follow
        if follow:
            self.scroll_end(animate=False)
        self._title()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow

    def _title(self) -> None:
        name = self.job_id or "no job"
        self.border_title = f"log · {name}" + ("" if self.follow else " · paused (f follows)")
        self.border_subtitle = self._frame
