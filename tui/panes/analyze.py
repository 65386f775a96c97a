"""The Analyze pane."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from core.paths import Workspace


class AnalyzePane(Vertical):
    pane_id = "analyze"
    title = "Analyze"

    def __init__(self, ws: Workspace, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ws = ws

    def compose(self) -> ComposeResult:
        yield Static("Analyze: coming")
