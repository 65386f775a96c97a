"""The key reference (``?``)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# ncanvas keys

| key | action |
|---|---|
| `1`..`5` | panes: Jobs, Classify, Grad-CAM, Explain, Analyze |
| `n` | new job (form, validated before start) |
| `p` | pause / continue the selected job |
| `s` | stop (checkpoint, then exit) |
| `r` | resume from `latest.pt` |
| `k` | kill (asks first) |
| `d` | delete logs and checkpoints (asks first) |
| `enter` | job details: config, checkpoints, events, failure reason |
| `space` | mark / unmark a job for the curve overlay |
| `/` | filter jobs (`esc` clears) |
| `l` | log-scale y on/off |
| `e` / `E` | more / less EMA smoothing (`0` turns it off) |
| `m` | show / hide the metric plot |
| `f` | follow the log on/off (in the log) |
| `ctrl+p` | command palette (every action above) |
| `?` | this help |
| `q` | quit (jobs keep running) |

Jobs are separate processes: quitting the dashboard or losing the SSH session does not stop them.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 76; max-width: 100%; height: 90%; border: round $accent; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(HELP)
