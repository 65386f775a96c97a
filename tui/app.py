"""Placeholder until the dashboard lands (issue 6)."""

from __future__ import annotations


def run_app(home: str | None = None, theme: str | None = None) -> None:
    from core.errors import NcanvasError

    raise NcanvasError("the dashboard is not built yet; use the subcommands (ncanvas --help)")
