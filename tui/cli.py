"""The ``ncanvas`` command line: the dashboard by default, and every action as a headless subcommand.

Module scope stays light (no torch): ``ncanvas --help`` must answer in well under a second. Each area's commands
live in their own module with a ``register(app)`` function.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn, Protocol, cast

import typer
from typer.core import TyperGroup

from core.errors import NcanvasError
from tui import cli_art, cli_data, cli_jobs, cli_llm, cli_vision
from tui.cli_base import CliState, state, workspace


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _quiet_libraries() -> None:
    """Library warnings would surround the command's one line of output or error (torch's notes on loading,
    transformers' on configs): the CLI drops them; ``NCANVAS_DEBUG=1`` shows them. Job processes keep theirs in
    stdout.log."""
    import warnings

    warnings.simplefilter("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


# What --help shows after an option that takes a value, by parameter name, else by type: short words instead of
# typer's <str>/<int range> (a flag shows none).
METAVARS = {"home": "DIR", "data_dir": "DIR", "out": "PATH", "png": "FILE", "prompt_file": "FILE",
            "checkpoint": "CKPT", "cnn": "CKPT", "llm": "CKPT", "compare": "CKPT", "sample": "DATASET:N",
            "layer": "NAME", "class_": "CLASS", "device": "cpu|cuda[:N]", "theme": "NAME", "gpu": "auto|N|cpu",
            "colors": "truecolor|256", "after": "ID", "name": "ID", "host": "HOST", "public_url": "URL", "data": "DIR",
            "method": "METHOD", "cmap": "MAP", "conf": "PCT[,PCT,PCT]", "artist": "NAME", "style": "NAME",
            "genre": "NAME"}
_TYPE_METAVARS = {int: "N", float: "X", str: "TEXT"}


def _short_metavars(group: Any) -> None:
    """Give every option of the command tree a short metavar (see :data:`METAVARS`; choices as ``a|b|c``) unless
    it has one, and show arguments by their upper-case name alone."""
    from pathlib import PurePath

    stack = [group]
    while stack:
        cmd = stack.pop()
        stack.extend(getattr(cmd, "commands", {}).values())
        for p in cmd.params:
            if p.param_type_name == "argument":
                p.metavar = p.metavar or (p.name or "arg").upper()
                p.display_type_rich = lambda ctx=None: None  # typer would add "<str>" after the name
                continue
            if p.metavar is not None or getattr(p, "is_flag", False) or getattr(p, "count", False):
                continue
            desc = getattr(p, "type_descriptor", None)
            if desc is not None and desc.is_choice:
                p.metavar = "|".join(str(getattr(c, "value", c)) for c in desc.choices or ())
            else:
                annotation = getattr(desc, "annotation", str)
                by_type = "PATH" if isinstance(annotation, type) and issubclass(annotation, PurePath) else \
                    _TYPE_METAVARS.get(annotation, "VALUE")
                p.metavar = METAVARS.get(p.name or "", by_type)


class _ClickError(Protocol):
    """What the handlers below use of click's ``UsageError`` and ``ClickException``."""

    exit_code: int
    ctx: Any

    def format_message(self) -> str: ...

    def show(self) -> None: ...


def _click_error(name: str) -> type[Exception]:
    """click's exception class ``name``, whether typer vendors click or uses the real one."""
    return cast("type[Exception]", next(c for c in typer.BadParameter.__mro__ if c.__name__ == name))


def _usage_exit(e: _ClickError) -> NoReturn:
    if type(e).__name__ == "NoArgsIsHelpError":  # `ncanvas jobs`: the group's help, as click would
        e.show()
        sys.exit(e.exit_code)
    where = e.ctx.command_path if e.ctx is not None else "ncanvas"
    typer.echo(f"ncanvas: {e.format_message()} (see {where} --help)", err=True)
    sys.exit(e.exit_code)


class _OneLineErrors(TyperGroup):
    """Turns any error into one line on stderr and exit 1 (a traceback only with NCANVAS_DEBUG=1); usage errors
    (unknown command or option, a value of the wrong type) into one line and exit 2."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:
        _short_metavars(self)
        if not os.environ.get("NCANVAS_DEBUG"):
            _quiet_libraries()
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False,
                                windows_expand_args=windows_expand_args, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False,
                              windows_expand_args=windows_expand_args, **extra)
        except _click_error("UsageError") as e:
            _usage_exit(cast(_ClickError, e))
        except _click_error("ClickException") as e:
            typer.echo(f"ncanvas: {cast(_ClickError, e).format_message()}", err=True)
            sys.exit(cast(_ClickError, e).exit_code)
        except typer.Abort:  # end of input at a prompt
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except NcanvasError as e:
            typer.echo(f"ncanvas: {e}", err=True)
            raise typer.Exit(1) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except BrokenPipeError as e:
            if not _stdout_closed():  # some other pipe (a socket, a subprocess): an error like any other
                typer.echo(f"ncanvas: BrokenPipeError: {e}", err=True)
                raise typer.Exit(1) from None
            # `ncanvas ... | head`: the reader left; end quietly, as other Unix tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
            raise typer.Exit(141) from None
        except Exception as e:  # noqa: BLE001 - the CLI promise: never a traceback
            if os.environ.get("NCANVAS_DEBUG"):
                raise
            if type(e).__module__ == "click.exceptions" or hasattr(e, "exit_code"):
                raise
            from core.fserrors import describe_os_error

            said = describe_os_error(e)  # a full disk, a read-only or denied path, also when a library wrapped it
            if said is None:
                msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
                said = f"{type(e).__name__}: {msg} (NCANVAS_DEBUG=1 shows the traceback)"
            typer.echo(f"ncanvas: {said}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_OneLineErrors,
    name="ncanvas",
    help="ncanvas: train and explain neural networks from the terminal. Without a command, opens the dashboard.",
    invoke_without_command=True,
    no_args_is_help=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: readable at 80 columns (the rich panels squeeze descriptions)
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"ncanvas {version('ncanvas')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            typer.echo("ncanvas (not installed: run `make install`)")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[str | None, typer.Option("--home", help="Workspace root (else NCANVAS_HOME, ncanvas.toml, user dir).")] = None,
    theme: Annotated[str | None, typer.Option("--theme", help="Dashboard theme, e.g. textual-dark, nord, gruvbox.")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    ctx.obj = CliState(home, theme)
    if ctx.invoked_subcommand is None:
        from tui.app import run_app

        run_app(home=str(workspace(ctx).root), theme=theme)


@app.command("home")
def home_cmd(ctx: typer.Context) -> None:
    """Print the workspace root (where logs/ and checkpoints/ go)."""
    typer.echo(str(workspace(ctx).root))


@app.command("web")
def web_cmd(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on (localhost: only this machine; reach it "
                                            "from a laptop with ssh -L PORT:localhost:PORT).")] = "localhost",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    public_url: Annotated[str | None, typer.Option(help="URL the browser uses, when it differs from "
                                                        "http://HOST:PORT (e.g. behind a proxy).")] = None,
) -> None:
    """Serve the dashboard in a browser (textual-serve): each browser tab runs its own `ncanvas` session, which ends
    when the tab closes or its connection drops (and with the server)."""
    import shlex

    try:
        from tui.web import DashboardServer
    except ImportError:
        raise NcanvasError("ncanvas web needs textual-serve: pip install 'ncanvas[web]'") from None
    st = state(ctx)
    argv = [sys.executable, "-m", "tui.cli", "--home", str(st.workspace().root)]
    if st.theme:
        from textual.theme import BUILTIN_THEMES

        if st.theme not in BUILTIN_THEMES:
            raise NcanvasError(f"unknown theme {st.theme!r}; themes: {', '.join(sorted(BUILTIN_THEMES))}")
        argv += ["--theme", st.theme]
    typer.echo(f"ncanvas web: http://{host}:{port} (Ctrl-C stops the server; jobs go on)", err=True)
    # exec: the session is the server's own child (no shell in between), so it can tell when the server is gone
    DashboardServer("exec " + shlex.join(argv), host=host, port=port, title="ncanvas", public_url=public_url).serve()


for _module in (cli_jobs, cli_data, cli_vision, cli_llm, cli_art):
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        _ctrl_c_quits_quietly()
        sys.exit(130)
    except SystemExit:
        _ctrl_c_quits_quietly()
        raise


def _ctrl_c_quits_quietly() -> None:
    """From here on (the interpreter exits: atexit callbacks, thread joins), a Ctrl-C ends the process with 130 at
    once instead of "Exception ignored in atexit callback ... KeyboardInterrupt" and exit 0."""
    import signal

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe: nothing more can reach it anyway
    try:
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    except ValueError:  # not the main thread (an embedding caller): its own handler stays
        pass


if __name__ == "__main__":  # ``python -m tui.cli`` is how ``ncanvas web`` starts each session
    main()
