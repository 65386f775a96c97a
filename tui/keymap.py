"""Every key of the dashboard, read from the ``BINDINGS`` of the widgets that own them: the help screen and the
command palette are built from this list, so a key is written once, on its widget (with a ``tooltip`` that says
what it does)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from tui.keys import ALT_DIGIT_CHARACTERS

KEY_LABELS = {"question_mark": "?", "slash": "/", "escape": "esc", "space": "space", "enter": "enter"}


@dataclass(frozen=True)
class KeySource:
    """A widget class whose own bindings form one section of the help."""

    area: str  # the help section and the palette's prefix
    cls: type
    target: str | None  # what the palette runs the action on: "app", a widget type name, or None (not in it)
    pane: str | None = None  # the pane the palette shows before running the action


@dataclass(frozen=True)
class KeyEntry:
    area: str
    keys: tuple[str, ...]  # as a user types them: "ctrl+r", "?", "F3", "alt+3"
    action: str
    description: str  # the footer's word
    tooltip: str  # what it does, one sentence
    target: str | None
    pane: str | None


def key_label(key: str) -> str | None:
    """How the help writes a key; None for the alt+digit aliases (the characters Textual reads ESC+digit as)."""
    if key in ALT_DIGIT_CHARACTERS:
        return None
    if len(key) == 2 and key[0] == "f" and key[1].isdigit():
        return key.upper()
    return KEY_LABELS.get(key, key)


def sources() -> list[KeySource]:
    """Where the keys live, in the order the help lists them (imported here: the app imports the palette)."""
    from tui.app import NcanvasApp
    from tui.dashboard import Dashboard
    from tui.panes import PANES
    from tui.panes.base import InferencePane
    from tui.screens.help import HelpScreen
    from tui.widgets.jobs_table import JobsTable
    from tui.widgets.log_tail import LogTail

    return [KeySource("Anywhere", NcanvasApp, "app"), KeySource("Jobs", Dashboard, "Dashboard", "jobs"),
            KeySource("Jobs", JobsTable, "JobsTable", "jobs"), KeySource("Jobs: log", LogTail, "LogTail", "jobs"),
            KeySource("Panes 2-5", InferencePane, None),
            *(KeySource(p.title, p, p.__name__, p.pane_id) for p in PANES),
            KeySource("This help", HelpScreen, None)]


def own_bindings(cls: type) -> list[Any]:
    """The bindings a class declares itself (inherited ones are listed under their own class)."""
    return list(cls.__dict__.get("BINDINGS", []))


def entries() -> list[KeyEntry]:
    """One entry per action of each source, its keys merged (``1`` and ``F1, alt+1`` both show the Jobs pane)."""
    out: dict[tuple[str, str], KeyEntry] = {}
    for src in sources():
        for b in own_bindings(src.cls):
            keys = tuple(lb for k in b.key.split(",") if (lb := key_label(k.strip())))
            found = out.get((src.area, b.action))
            if found is not None:
                out[(src.area, b.action)] = replace(found, keys=found.keys + keys)
                continue
            out[(src.area, b.action)] = KeyEntry(src.area, keys, b.action, b.description, b.tooltip or b.description,
                                                 src.target, src.pane)
    return list(out.values())
