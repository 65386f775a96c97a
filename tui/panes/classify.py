"""The Classify pane."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from core.paths import Workspace


class ClassifyPane(Vertical):
    pane_id = "classify"
    title = "Classify"

    def __init__(self, ws: Workspace, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ws = ws

    def compose(self) -> ComposeResult:
        yield Static("Classify: coming")
