"""The ``ncanvas`` command line: the dashboard by default, and every action as a headless subcommand.

Module scope stays light (no torch): ``ncanvas --help`` must answer in well under a second. Each area's commands
live in their own module with a ``register(app)`` function.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

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


class _OneLineErrors(TyperGroup):
    """Turns any error into one line on stderr and exit 1 (a traceback only with NCANVAS_DEBUG=1); usage errors
    (unknown command or option, a value of the wrong type) into one line and exit 2."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        # click's exception classes, whether typer vendors click or uses the real one
        usage_error, click_exception = (next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)
                                        for name in ("UsageError", "ClickException"))
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except usage_error as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # `ncanvas jobs`: the group's help, as click would
                e.show()
                sys.exit(e.exit_code)
            where = e.ctx.command_path if e.ctx is not None else "ncanvas"
            typer.echo(f"ncanvas: {e.format_message()} (see {where} --help)", err=True)
            sys.exit(e.exit_code)
        except click_exception as e:
            typer.echo(f"ncanvas: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
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
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            typer.echo(f"ncanvas: {type(e).__name__}: {msg} (NCANVAS_DEBUG=1 shows the traceback)", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_OneLineErrors,
    name="ncanvas",
    help="ncanvas: train and explain neural networks from the terminal. Without a command, opens the dashboard.",
    invoke_without_command=True,
    no_args_is_help=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
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
        sys.exit(130)


if __name__ == "__main__":  # ``python -m tui.cli`` is how ``ncanvas web`` starts each session
    main()
