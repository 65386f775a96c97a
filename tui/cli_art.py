"""``ncanvas data art-synthetic`` and ``ncanvas analyze`` (image -> CNN -> Grad-CAM -> streamed explanation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from core.errors import NcanvasError
from tui.cli_data import data_app


@data_app.command("art-synthetic")
def art_synthetic(
    out: Annotated[Path, typer.Option("--out", help="Folder for images/ and labels.csv.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of paintings.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same set).")] = 0,
    size: Annotated[int, typer.Option(min=16, max=1024, help="Image side in pixels.")] = 64,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Draw a procedural art set in the WikiArt layout (each style a stroke family, each artist a variation)."""
    import time

    from core.art.synthetic import write_dataset

    if out.exists() and not out.is_dir():
        raise NcanvasError(f"--out {out} exists and is not a folder")
    t0 = time.perf_counter()
    csv_path = write_dataset(out, n, seed=seed, size=size)
    info = {"csv": str(csv_path), "images": n, "seconds": round(time.perf_counter() - t0, 2)}
    typer.echo(json.dumps(info) if as_json else f"wrote {n} images and {csv_path} in {info['seconds']}s")


def register(app: typer.Typer) -> None:
    """The ``data`` group itself is registered by tui.cli_data; analyze is added here."""
