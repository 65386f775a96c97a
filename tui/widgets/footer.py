"""The footer's order: quit and help first, so a narrow terminal (80 columns) cuts the pane's rarer keys instead.

Textual's footer lists the active bindings from the focused widget up to the app, so the app's own keys come last
and are the first to be cut. The main screen hands them out first instead; everything else keeps its order.
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen

PINNED = ("quit", "help")  # actions whose keys lead the footer


class MainScreen(Screen[None]):
    @property
    def active_bindings(self) -> dict[str, Any]:
        bindings = super().active_bindings
        first = {k: b for k, b in bindings.items() if b.binding.action in PINNED}
        return {**first, **{k: b for k, b in bindings.items() if k not in first}}
