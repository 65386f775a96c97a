"""``ncanvas data ...``: dataset generators (one sub-app that several areas add commands to)."""

from __future__ import annotations

import typer

data_app = typer.Typer(help="Generate datasets (explanations, synthetic art).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
