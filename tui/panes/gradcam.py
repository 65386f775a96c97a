"""The Grad-CAM pane."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from core.paths import Workspace


class GradCamPane(Vertical):
    pane_id = "gradcam"
    title = "Grad-CAM"

    def __init__(self, ws: Workspace, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ws = ws

    def compose(self) -> ComposeResult:
        yield Static("Grad-CAM: coming")
