"""Key names shared by the app's bindings and its text fields. No Textual import."""

from __future__ import annotations

# What a terminal sends for alt+1..alt+5 when it sends meta as an ESC prefix (tmux, xterm): Textual reads ESC+digit
# as the character macOS's Option+digit types (ESC 3 -> "£"), so those characters are the alt+digit keys here
ALT_DIGIT_CHARACTERS = ("inverted_exclamation_mark", "trade_mark_sign", "pound_sign", "cent_sign", "infinity")
