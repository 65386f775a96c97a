"""The key reference (``?``), built from the bindings themselves (:mod:`tui.keymap`); ``esc`` closes it."""

from __future__ import annotations

from itertools import groupby
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

NOTES = (
    "Text fields take printable keys, digits too: esc leaves the field and the pane's keys act again; F1..F5, "
    "alt+1..alt+5 and ctrl+q work from anywhere, ctrl+p opens the command palette (every action above).",
    "Images in Classify and Grad-CAM are a path (with completion), sample:N (test images stored in the "
    "checkpoint) or DATASET:N (e.g. mnist:7); enter in a field runs the pane, like ctrl+r.",
    "Jobs are separate processes: quitting the dashboard or losing the SSH session does not stop them.",
)


def help_sections() -> list[tuple[str, list[tuple[str, str]]]]:
    """(area, [(keys, what they do)]) in the order of :func:`tui.keymap.entries`."""
    from tui.keymap import entries

    return [(area, [(" / ".join(e.keys), e.tooltip) for e in group])
            for area, group in groupby(entries(), key=lambda e: e.area)]


def help_text() -> str:
    """The help as plain text (tests, and anyone who greps it)."""
    lines = ["ncanvas keys (esc closes)"]
    for area, rows in help_sections():
        lines += ["", area, *(f"  {keys:<16} {what}" for keys, what in rows)]
    return "\n".join([*lines, "", *NOTES])


def help_renderable() -> Any:
    parts: list[Any] = []
    for area, rows in help_sections():
        table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False, expand=True)
        table.add_column(style="bold cyan", no_wrap=True, width=16)
        table.add_column(ratio=1)
        for keys, what in rows:
            table.add_row(keys, what)
        parts += [Text(area, style="bold underline"), table, Text("")]
    parts += [Text(note + "\n", style="dim") for note in NOTES]
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", tooltip="Close this help")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 96; max-width: 100%; height: 90%; border: round $accent; background: $surface; padding: 0 1;
    }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = "ncanvas keys · esc closes"
            yield Static(help_renderable())
