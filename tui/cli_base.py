"""What every ``ncanvas`` sub-command module shares: the CLI state (``--home``, ``--theme``), the workspace, the
argument types used everywhere and the checkpoint resolver. No torch.

The root app (:mod:`tui.cli`) imports the sub-command modules; they import this module, never ``tui.cli``, so the
CLI modules form no import cycle (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import NcanvasError
from core.paths import JOB_ID_RE, Workspace

JobId = Annotated[str, typer.Argument(help="Job id, e.g. cnn-0001.", show_default=False, metavar="ID")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output (strict JSON: a NaN is null, named "
                                                     "in a \"nonfinite\" field).")]


Threads = Annotated[int | None, typer.Option("--threads", min=1, max=1024, help="torch CPU threads (default: the "
                                                                          "cores that running jobs leave free).")]


def apply_threads(ctx: typer.Context, threads: int | None = None) -> int:
    """Set torch's thread count for an inference command (:mod:`core.threads`: spare the running jobs' cores)."""
    from core.threads import use_inference_threads

    return use_inference_threads(threads, ws=workspace(ctx))


def echo_json(obj: Any, **kwargs: Any) -> None:
    """Print ``obj`` as strict JSON (:mod:`core.strictjson`): every ``--json`` output goes through here."""
    from core.strictjson import dumps

    typer.echo(dumps(obj, **kwargs))


@dataclass
class CliState:
    """The root options, kept on the root click context's ``obj``."""

    home: str | None = None
    theme: str | None = None

    def workspace(self) -> Workspace:
        return Workspace.resolve(self.home)


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def workspace(ctx: typer.Context) -> Workspace:
    """The workspace of this invocation (``--home``, ``NCANVAS_HOME``, ``ncanvas.toml``, the user data dir)."""
    return state(ctx).workspace()


def check_output(path: str | Path | None) -> None:
    """Refuse an output option that cannot be written (a folder) before any work is done; ``-``, FIFOs, devices
    and symlinks are fine (see :func:`core.atomic.write_target`)."""
    from core.atomic import write_target

    if path is not None:
        write_target(path)


def checkpoint_path(ctx: typer.Context, value: str) -> Path:
    """A checkpoint as given: a path that exists (a run folder such as ``checkpoints/cnn-0001`` gives its
    ``best_model.pt``, else ``latest.pt``; a transformers folder stays a folder); else the same path inside the
    workspace (the README's ``checkpoints/llm-0001`` works from any folder when NCANVAS_HOME or --home is set);
    else a job id's ``best_model.pt`` (else its ``latest.pt``)."""
    p = Path(value).expanduser()
    if not p.exists() and not p.is_absolute() and not JOB_ID_RE.match(value):
        inside = workspace(ctx).root / p
        p = inside if inside.exists() else p
    if p.is_dir() and not (p / "config.json").is_file():
        return next((p / n for n in ("best_model.pt", "latest.pt") if (p / n).is_file()), p)
    if p.exists() or not JOB_ID_RE.match(value):
        return p
    run = workspace(ctx).run(value)
    for name in ("best_model.pt", "latest.pt"):
        if (run.ckpt_dir / name).is_file():
            return run.ckpt_dir / name
    raise NcanvasError(f"no checkpoint file {value!r}, and no checkpoints for a job of that name in {run.ckpt_dir}")
