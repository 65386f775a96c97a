"""The checker's verdict under an explanation: a ✓ or ✗ per fact (``core.explain.check.marks``), as rich Text."""

from __future__ import annotations

from typing import Any

from rich.text import Text


def verdict_text(marks: list[tuple[bool, str]], result: Any = None, max_tries: int | None = None) -> Text:
    """``✓ artist Claude Monet  ✗ 80.7%  ...`` in green and red, then how the text was decoded.

    Args:
        marks: ``(ok, label)`` per fact (``tui.inference.verdict_marks``); empty for a free-form prompt.
        result: the grounded decode's result (its ``decode`` and ``tries``: texts written), for the note.
        max_tries: the most texts the decode could write (``--tries``).
    """
    if not marks:
        return Text("(free-form prompt: no grounding check)", style="dim")
    out = Text()
    for i, (ok, label) in enumerate(marks):
        if i:
            out.append("  ")
        out.append("✓ " if ok else "✗ ", style="bold green" if ok else "bold red")
        out.append(label, style="" if ok else "red")  # model-derived text: appended as plain text, never markup
    note = _note(result, max_tries)
    if note:
        out.append(f"  ({note})", style="dim")
    return out


def _note(result: Any, max_tries: int | None) -> str:
    if result is None:
        return ""
    decode, tries = getattr(result, "decode", "off"), int(getattr(result, "tries", 1))
    if decode == "off":
        return "plain decoding, checked"
    if decode in ("both", "resample") and tries > 1:
        return f"grounded decode {decode}: {tries} of {max_tries or tries} tries written, the best-grounded kept"
    return f"grounded decode {decode}"
