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
| `1`..`5` | panes: Jobs, Classify, Grad-CAM, Explain, Analyze (`alt+1`..`alt+5` inside a text field) |
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

**Classify / Grad-CAM / Explain / Analyze**: `enter` in a field or `ctrl+r` runs; images are a path,
`sample:N` (test images stored in the checkpoint) or `mnist:N`. Grad-CAM: `t`/`T` class, `y`/`Y` layer,
`m` method (Grad-CAM, Grad-CAM++, guided backprop, guided Grad-CAM), `a`/`A` overlay alpha,
`v` view (overlay, heat map, filters, feature maps, activation maximisation). Explain: `esc` cancels.

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
