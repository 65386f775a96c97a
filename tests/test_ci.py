"""CI runs lint and type checks before the suite, and they cover the code packages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _commands(text: str) -> list[str]:
    """The lines that run something, without comments."""
    lines = (re.sub(r"(^|\s)#.*$", "", ln).strip() for ln in text.splitlines())
    return [ln for ln in lines if ln]


def test_ci_runs_ruff_and_mypy_before_the_tests() -> None:
    ci = _commands((ROOT / ".ci" / "run").read_text())
    assert "set -euo pipefail" in ci, "a failing check fails the run"
    assert ci.index("make lint") < ci.index("make test")
    lint = re.search(r"^lint:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert lint is not None
    assert _commands(lint.group(1).replace("\t", "")) == ["$(BIN)/ruff check .", "$(BIN)/mypy"]


def test_mypy_checks_the_three_packages() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert sorted(cfg["packages"]) == ["core", "jobs", "tui"]
    assert cfg["check_untyped_defs"] and cfg["warn_unused_ignores"]
