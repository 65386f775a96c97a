"""The key reference (``?``), built from the bindings themselves (:mod:`tui.keymap`); ``esc`` closes it."""

from __future__ import annotations

from itertools import groupby

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

NOTES = """\
**Text fields** take printable keys (digits too): `esc` leaves the field and the pane's keys act again;
`F1`..`F5`, `alt+1`..`alt+5` and `ctrl+q` work from anywhere, and `ctrl+p` opens the command palette.

**Images** in Classify and Grad-CAM are a path (with completion), `sample:N` (test images stored in the
checkpoint) or `DATASET:N` (e.g. `mnist:7`). `enter` in a field runs the pane, like `ctrl+r`.

Jobs are separate processes: quitting the dashboard or losing the SSH session does not stop them.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def help_markdown() -> str:
    """One table per area: keys and what they do."""
    from tui.keymap import entries

    parts = ["# ncanvas keys  (esc closes)\n"]
    for area, group in groupby(entries(), key=lambda e: e.area):
        parts.append(f"\n**{area}**\n\n| key | what it does |\n|---|---|")
        parts += [f"| {_cell(' / '.join(f'`{k}`' for k in e.keys))} | {_cell(e.tooltip)} |" for e in group]
    parts.append("\n" + NOTES)
    return "\n".join(parts)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", tooltip="Close this help")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; max-width: 100%; height: 90%; border: round $accent; background: $surface; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = "keys · esc closes"
            yield Markdown(help_markdown())
