"""A text field that leaves the pane keys to the app.

A terminal that sends alt as an ESC prefix (tmux, xterm) sends alt+3 as ESC 3, which Textual reads as the
character macOS's Option+3 types ("£"). A plain Input takes that as text, and a binding on a character a focused
Input would consume is skipped altogether; this field declines those five characters, so alt+1..alt+5 switch panes
from inside it.
"""

from __future__ import annotations

from textual.widgets import Input

from tui.keys import ALT_DIGIT_CHARACTERS


class Field(Input):
    def check_consume_key(self, key: str, character: str | None = None) -> bool:
        return key not in ALT_DIGIT_CHARACTERS and super().check_consume_key(key, character)
