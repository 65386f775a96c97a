"""Issue 13.21: `--help` of every command readable at 80 columns: no `<bool>` after flags, short metavars instead
of `<str>`/`<int range>`, descriptions in a column at least 40 characters wide."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from tui.cli import app

runner = CliRunner()


def _command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    out, stack = [], [([], root)]
    while stack:
        path, cmd = stack.pop()
        out.append(path)
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            stack.append(([*path, name], sub))
    return out


PATHS = _command_paths()


def test_every_command_is_covered() -> None:
    names = {" ".join(p) for p in PATHS}
    assert {"", "train cnn", "jobs resume", "gradcam", "explain", "analyze", "viz maxact"} <= names


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) or "ncanvas" for p in PATHS])
def test_help_is_readable_at_80_columns(path: list[str]) -> None:
    res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert not re.search(r"<(bool|str|int|float|path)[^>]*>", text), text  # typer's type tags
    assert max(len(ln) for ln in text.splitlines()) <= 80, text
    options = text.split("Options:", 1)[1] if "Options:" in text else ""
    for line in options.splitlines():
        indent = len(line) - len(line.lstrip())
        assert indent <= 40, f"a description squeezed right of column 40:\n{text}"
    if not path:  # the root: --version and shell completion are flags too
        assert re.search(r"^  --version +Print the version", text, re.M)
        assert re.search(r"^  --install-completion +Install", text, re.M)
