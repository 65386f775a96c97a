"""Plain-text captures of the running app's screen (docs and tests; no terminal needed)."""

from __future__ import annotations

from typing import Any


def screen_text(app: Any) -> str:
    """The visible screen as plain text, one line per row, trailing spaces trimmed."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text.rstrip() for strip in strips)
