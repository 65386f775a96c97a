"""``ncanvas train``, ``ncanvas jobs ...``, ``ncanvas logs`` and ``ncanvas ckpt`` commands. No torch at import."""

from __future__ import annotations

import contextlib
import enum
import inspect
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from core.errors import NcanvasError
from core.paths import validate_job_id
from core.runrec import FINISHED, STOPPED
from jobs.config import LOOP_OPTIONS, option_specs
from jobs.kinds import KINDS, kind_config
from tui.cli_base import AsJson, JobId, echo_json, workspace
from tui.fmt import fmt_duration, fmt_eta, fmt_num, fmt_progress, headline_metric, slurm_line, throughput

jobs_app = typer.Typer(help="List and control training jobs.", no_args_is_help=True)
ckpt_app = typer.Typer(help="Inspect checkpoints.", no_args_is_help=True)
train_app = typer.Typer(help="Start a training job (runs in the background; --foreground to watch).",
                        no_args_is_help=True)

def _status_json(st: Any) -> dict[str, Any]:
    from jobs.supervisor import UNREADABLE

    if st.state == UNREADABLE:  # no record to show: what is known and why
        return {"id": st.id, "kind": None, "state": st.state, "alive": False, "reason": st.reason}
    rec = st.record.to_json()
    cause = st.cause or {}
    rec.update(state=st.state, alive=st.alive, reason=st.note or st.reason, error=st.reason,
               cause=cause.get("summary"), cause_code=cause.get("code"), fix=cause.get("fix"), evidence=cause.get("evidence", []), where=cause.get("where"),
               health=list(st.health), elapsed_s=st.elapsed_s, paused_s=st.paused_s, eta_s=st.eta_s,
               gpu_mem_mb=st.gpu_mem_mb, recorded_state=st.record.state, slurm_now=st.slurm)
    return rec


# ===================================================================================== jobs


@jobs_app.command("ls")
def jobs_ls(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List jobs: id, kind, state, progress, last loss/metric, elapsed, ETA, GPU."""
    from jobs.supervisor import list_status

    statuses = list_status(workspace(ctx), unreadable=True)
    if as_json:
        echo_json([_status_json(s) for s in statuses], indent=2)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from tui.fmt import STATE_STYLE, fmt_slurm

    table = Table(box=None, header_style="bold")
    slurm = any(s.record.backend == "slurm" for s in statuses)  # the column only where Slurm jobs are
    for col in ("ID", "KIND", "STATE", "PROGRESS", "LOSS", "METRIC", "SPEED", "ELAPSED", "ETA", "GPU",
                *(["SLURM"] if slurm else []), "NOTE"):
        table.add_column(col)
    for s in statuses:
        p = s.record.progress
        if s.record.kind == "?":  # unreadable: the reason takes the progress column
            table.add_row(s.id, "-", f"[bold red]{s.state}[/]", escape(s.reason or ""), *["-"] * (7 + slurm))
            continue
        table.add_row(s.id, s.record.kind, f"[{STATE_STYLE.get(s.state, '')}]{s.state}[/]", fmt_progress(p),
                      fmt_num(p.get("loss")), headline_metric(p, s.record.kind), throughput(p, s.record.kind),
                      fmt_duration(s.elapsed_s), fmt_eta(s.state, s.eta_s), s.record.gpu,
                      *([escape(fmt_slurm(s))] if slurm else []),
                      f"[{'red' if s.state == 'failed' else 'yellow'}]{escape(s.note)}[/]")
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped into a script or a file: never truncate cells
    if statuses:
        console.print(table)
    else:
        console.print("no jobs yet: start one with [bold]ncanvas train demo[/] (or cnn, llm, gpt2)")


@jobs_app.command("show")
def jobs_show(ctx: typer.Context, job_id: JobId, as_json: AsJson = False) -> None:
    """Show one job: config, state, progress, checkpoints, failure reason, last log lines."""
    from core.logtext import last_lines
    from jobs.supervisor import job_status

    ws = workspace(ctx)
    st = job_status(ws, job_id)
    run = ws.run(job_id)
    info = _status_json(st)
    info["checkpoints"] = sorted(p.name for p in run.ckpt_dir.glob("*")) if run.ckpt_dir.is_dir() else []
    info["log_dir"], info["ckpt_dir"] = str(run.log_dir), str(run.ckpt_dir)
    if as_json:
        echo_json(info, indent=2)
        return
    r = st.record
    typer.echo(f"{r.id}  {r.kind}  {st.state}{f'  (alive, pid {r.pid})' if st.alive else ''}")
    typer.echo(f"  progress: {fmt_progress(r.progress)}   loss {fmt_num(r.progress.get('loss'))}   "
               f"{headline_metric(r.progress, r.kind)}   elapsed {fmt_duration(st.elapsed_s)}{_elapsed_note(st)}   "
               f"ETA {fmt_eta(st.state, st.eta_s)}")
    typer.echo(f"  gpu: {r.gpu}   attempts: {r.attempts}   after: {r.after or '-'}   code: "
               f"{r.code.get('commit', '?')[:10]}{' (dirty)' if r.code.get('dirty') else ''}")
    if r.backend == "slurm":
        typer.echo("  " + slurm_line(st))
    _echo_cause(st)
    for badge in st.health:
        typer.echo(f"  health: {badge['code'].replace('_', ' ')}: {badge['text']}")
    typer.echo("  config: " + ", ".join(f"{k}={v}" for k, v in r.config.items()))
    typer.echo(f"  logs: {run.log_dir}")
    typer.echo(f"  checkpoints: {run.ckpt_dir}  [{', '.join(info['checkpoints']) or 'none yet'}]")
    lines = last_lines(run.stdout, 8)
    if lines:
        typer.echo("  last log lines:")
        for ln in lines:
            typer.echo(f"    {ln}")


def _echo_cause(st: Any) -> None:
    """Why it failed, what to do, what shows it and where it was raised (``jobs show``)."""
    cause = st.cause
    if not cause:
        if st.reason:
            typer.echo(f"  reason: {st.reason}")
        return
    typer.echo(f"  cause: {cause.get('summary')}")
    if st.reason and st.reason != cause.get("summary"):
        typer.echo(f"  error: {st.reason}")
    typer.echo(f"  fix: {cause.get('fix')}")
    for line in cause.get("evidence") or []:
        if line and line not in (cause.get("summary"), st.reason):
            typer.echo(f"  evidence: {line}")
    if cause.get("where"):
        typer.echo(f"  raised at: {cause['where']}  (traceback: ncanvas logs {st.id})")


def _elapsed_note(st: Any) -> str:
    """`` (3 attempts; paused 2m05s, not counted)``: what the elapsed training time adds up and leaves out."""
    parts = [f"{st.record.attempts} attempts"] if st.record.attempts > 1 else []
    if st.paused_s >= 1:
        parts.append(f"paused {fmt_duration(st.paused_s)}, not counted")
    return f" ({'; '.join(parts)})" if parts else ""


def _verb(name: str, doc: str, fn_name: str, **extra: Any) -> None:
    def command(ctx: typer.Context, job_id: JobId) -> None:
        from jobs import supervisor

        typer.echo(getattr(supervisor, fn_name)(workspace(ctx), validate_job_id(job_id), **extra))

    command.__doc__ = doc
    jobs_app.command(name)(command)


_verb("pause", "Pause a job (SIGSTOP to its process group, scancel --signal=STOP under Slurm; GPU memory and the "
      "allocation stay held).", "pause")
_verb("cont", "Continue a paused job (SIGCONT).", "cont")


@jobs_app.command("resume")
def jobs_resume(
    ctx: typer.Context, job_id: JobId,
    from_scratch: Annotated[bool, typer.Option("--from-scratch", help="Start again from step 0 (needed when there "
                                               "is no latest.pt); the old metric rows move to "
                                               "metrics.attempt-N.jsonl.")] = False,
) -> None:
    """Relaunch a stopped/failed/killed job from latest.pt (a new submission under Slurm); its curve continues."""
    from jobs import supervisor

    typer.echo(supervisor.resume(workspace(ctx), validate_job_id(job_id), from_scratch=from_scratch))


@jobs_app.command("stop")
def jobs_stop(
    ctx: typer.Context, job_id: JobId,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return at once instead of waiting for the exit.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the checkpoint before killing.")] = 120.0,
) -> None:
    """Stop a job: it finishes the current step, saves latest.pt and exits (a second stop kills)."""
    from jobs import supervisor

    typer.echo(supervisor.stop(workspace(ctx), validate_job_id(job_id), wait=not no_wait, timeout=timeout))


@jobs_app.command("kill")
def jobs_kill(ctx: typer.Context, job_id: JobId,
              grace: Annotated[float, typer.Option(help="Seconds between SIGTERM and SIGKILL.")] = 5.0) -> None:
    """Kill a job's whole process group (SIGTERM, grace period, SIGKILL)."""
    from jobs import supervisor

    typer.echo(supervisor.kill(workspace(ctx), validate_job_id(job_id), grace=grace))


@jobs_app.command("rm")
def jobs_rm(ctx: typer.Context, job_id: JobId,
            force: Annotated[bool, typer.Option("--force", "-f", help="Kill a live job first.")] = False) -> None:
    """Delete a job's logs and checkpoints (refuses a live job unless --force)."""
    from jobs import supervisor

    typer.echo(supervisor.remove(workspace(ctx), validate_job_id(job_id), force=force))


# ===================================================================================== logs


def logs_cmd(
    ctx: typer.Context, job_id: JobId,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until the job ends.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="How many last lines to show first.")] = 40,
) -> None:
    """Print a job's log (stdout.log), with \\r progress frames collapsed."""
    from core.logtext import last_lines
    from jobs.supervisor import job_status

    ws = workspace(ctx)
    job_status(ws, job_id)  # an unknown id is one clear line
    path = ws.run(job_id).stdout
    if not follow:
        for ln in last_lines(path, lines):
            typer.echo(ln)
        return
    try:
        _follow(ws, job_id, path, lines)
    except KeyboardInterrupt:
        pass


def _follow(ws: Any, job_id: str, path: Path, backlog: int) -> None:
    """The last ``backlog`` lines, then every new line until the job ends, all from one reader: the follow starts
    at the byte where the backlog stopped, so nothing written in between is lost or shown twice, and a line still
    being drawn (``\\r`` frames) is printed once, collapsed, when it ends. A starting or queued job is followed too."""
    from collections import deque

    from core.logtext import LogTailer
    from jobs.supervisor import job_status

    tail = LogTailer(path, start_at_tail_bytes=256 << 10)
    first: deque[str] = deque(maxlen=backlog)
    while True:  # the backlog: read to the end as it is now (polls read at most 1 MiB each)
        before = tail.offset
        first.extend(tail.poll()[0])
        if tail.offset == before:
            break
    for ln in first:
        typer.echo(ln)
    while True:
        st = job_status(ws, job_id)  # before reading: whatever it wrote before it ended is read below
        going = st.alive or st.starting
        got, _ = tail.poll()
        for ln in got:
            typer.echo(ln)
        if not got:
            if not going:
                break
            time.sleep(0.25)
    if frame := tail.current_frame():  # a last line without its newline
        typer.echo(frame)


# ===================================================================================== ckpt


@ckpt_app.command("inspect")
def ckpt_inspect(path: Annotated[Path, typer.Argument(help="A .pt checkpoint.")], as_json: AsJson = False) -> None:
    """Describe a checkpoint: kind, architecture, step/epoch, parameters, config, metrics."""
    from core.checkpoint import load_checkpoint, summary

    info = summary(load_checkpoint(path))
    if as_json:
        echo_json(info, indent=2)
        return
    for key in ("kind", "arch", "step", "epoch", "batch_in_epoch", "best_metric", "parameters", "tensors", "dtypes"):
        typer.echo(f"{key:>14}: {info[key]}")
    states = [k[4:] for k in ("has_optimizer", "has_scheduler", "has_scaler", "has_rng") if info[k]]
    typer.echo(f"{'resumable':>14}: {', '.join(states) or 'weights only'}")
    typer.echo(f"{'config':>14}: " + ", ".join(f"{k}={v}" for k, v in (info["config"] or {}).items()))
    if info["metrics"]:
        typer.echo(f"{'metrics':>14}: " + json.dumps(info["metrics"], default=str)[:400])


# ===================================================================================== train


def _choice_enum(name: str, choices: tuple[str, ...]) -> type[enum.Enum]:
    return enum.Enum(name, {c: c for c in choices}, type=str)  # type: ignore[return-value]


def _train_command(kind: str) -> Any:
    cfg_cls = kind_config(kind)
    specs = sorted(option_specs(cfg_cls), key=lambda s: s.name in LOOP_OPTIONS)  # the kind's own panel first
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    for s in specs:
        typ: Any = s.type
        default = s.default
        if s.choices:
            typ = _choice_enum(f"{kind}_{s.name}", s.choices)
            default = typ(default) if default is not None else None
        elif typ not in (int, float, str, bool):
            typ, default = str, (None if default is None else json.dumps(default))
        if default is None:
            typ = typ | None
        flag = s.flag if s.type is not bool else f"{s.flag}/--no-{s.flag[2:]}"
        params.append(inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=Annotated[typ, typer.Option(flag, help=s.help, rich_help_panel=_panel(kind, s.name))]))
    common: list[tuple[str, Any, Any]] = [
        ("gpu", Annotated[str, typer.Option("--gpu", help="auto (most free memory), N, or cpu.", rich_help_panel="Job")], "auto"),
        ("gpus", Annotated[int, typer.Option("--gpus", min=1, help="Processes for DDP through torchrun: one per GPU (gloo ranks with --gpu cpu).", rich_help_panel="Job")], 1),
        ("after", Annotated[str | None, typer.Option("--after", help="Start when this job has finished.", rich_help_panel="Job")], None),
        ("max_per_gpu", Annotated[int, typer.Option("--max-per-gpu", min=0, help="Queue while this many jobs use the GPU (0: no limit).", rich_help_panel="Job")], 1),
        ("name", Annotated[str | None, typer.Option("--name", help="Job id instead of <kind>-NNNN.", rich_help_panel="Job")], None),
        ("foreground", Annotated[bool, typer.Option("--foreground", "-F", help="Run attached with a progress bar.", rich_help_panel="Job")], False),
        ("as_json", Annotated[bool, typer.Option("--json", help="Print the job record as JSON.", rich_help_panel="Job")], False),
        ("backend", Annotated[Backend, typer.Option("--backend", help="Where the job runs: local (this machine) or slurm (a batch job; defaults from \\[slurm] in ncanvas.toml).", rich_help_panel="Slurm")], Backend.local),
        *_SLURM_OPTIONS,
    ]
    for name, ann, default in common:
        params.append(inspect.Parameter(f"_{name}", inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann))

    def command(ctx: typer.Context, **kw: Any) -> None:
        values = {s.name: _plain(kw[s.name], s) for s in specs}
        if values.get("preset") not in (None, "none"):  # the preset fills what the user did not give
            values = {k: v for k, v in values.items() if k == "preset" or _given(ctx, k)}
        _start(ctx, kind, values, **{k[1:]: v for k, v in kw.items() if k.startswith("_")})

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = KINDS[kind].description
    return command


class Backend(str, enum.Enum):
    local = "local"
    slurm = "slurm"


def _slurm_opt(flag: str, typ: Any, help: str, metavar: str | None = None) -> Any:
    return Annotated[typ, typer.Option(flag, help=help, rich_help_panel="Slurm", show_default=False, metavar=metavar)]


# (name, annotation, default): sbatch's options; None = not given (ncanvas.toml's [slurm] or Slurm's default)
_SLURM_OPTIONS: list[tuple[str, Any, Any]] = [
    ("partition", _slurm_opt("--partition", str | None, "Slurm partition."), None),
    ("time", _slurm_opt("--time", str | None, "Time limit (minutes, HH:MM:SS, D-HH:MM); the job checkpoints and "
                        "requeues itself before it."), None),
    ("nodes", _slurm_opt("--nodes", int | None, "Nodes (DDP across them; rendezvous on the first)."), None),
    ("gpus_per_node", _slurm_opt("--gpus-per-node", int | None, "GPUs per node; one DDP process each."), None),
    ("cpus_per_task", _slurm_opt("--cpus-per-task", int | None, "CPUs per process."), None),
    ("mem", _slurm_opt("--mem", str | None, "Memory per node (e.g. 64G)."), None),
    ("account", _slurm_opt("--account", str | None, "Slurm account to charge."), None),
    ("qos", _slurm_opt("--qos", str | None, "Slurm quality of service."), None),
    ("slurm_arg", _slurm_opt("--slurm-arg", list[str] | None, "Any other sbatch option, passed through (repeatable: "
                             "--slurm-arg=--constraint=a100).", "OPTION"), None),
]
SLURM_FLAGS = tuple(name for name, _, _ in _SLURM_OPTIONS)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was typed (or came from the environment), not left at its default."""
    source = ctx.get_parameter_source(name)  # typer's own copy of click's ParameterSource: compared by name
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _panel(kind: str, option: str) -> str:
    """The --help panel of an option: the kind's own, or the training loop's (shared by every kind)."""
    return "Training loop" if option in LOOP_OPTIONS else f"{kind} options"


def _plain(value: Any, spec: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if spec.type not in (int, float, str, bool) and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise NcanvasError(f"{spec.flag} expects JSON; got {value!r}") from None
    return value


def _start(ctx: typer.Context, kind: str, values: dict[str, Any], *, gpu: str, gpus: int, after: str | None,
           max_per_gpu: int, name: str | None, foreground: bool, as_json: bool, backend: Backend = Backend.local,
           **slurm: Any) -> None:
    from jobs import supervisor

    if name is not None:
        validate_job_id(name)
    ws = workspace(ctx)
    given = {("args" if k == "slurm_arg" else k): v for k, v in slurm.items() if v is not None}
    rec, proc = supervisor.start_job(ws, kind, values, gpu=gpu, gpus=gpus, after=after, max_per_gpu=max_per_gpu,
                                     job_id=name, foreground=foreground, preflight=True, cwd=Path.cwd(),
                                     backend=backend.value, slurm=given)
    if as_json:
        echo_json(rec.to_json(), indent=2)
    elif rec.backend == "slurm":
        typer.echo(f"submitted {rec.id} ({kind}) as Slurm job {rec.slurm['job_id']}; script: {rec.slurm['script']}; "
                   f"logs: {ws.run(rec.id).log_dir}")
        typer.echo(f"  shared filesystem: {rec.slurm['shared_fs']}")
    else:
        waits = _queued_because(ws, rec, wait=0.0 if foreground else 3.0)
        what = f"queued {rec.id} ({kind} on {rec.gpu}; {waits})" if waits else f"started {rec.id} ({kind} on {rec.gpu})"
        typer.echo(f"{what}; logs: {ws.run(rec.id).log_dir}")
    if foreground and proc is not None:
        raise typer.Exit(_watch(ws, rec.id, proc))


def _queued_because(ws: Any, rec: Any, wait: float) -> str:
    """Why a job just launched waits in the queue ('' once it runs): its ``--after`` job has not finished, or
    (after up to ``wait`` seconds for the job to say so) no GPU slot is free."""
    from core.runrec import QUEUED, read_record
    from jobs.supervisor import job_status

    if rec.after is not None and job_status(ws, rec.after).state != FINISHED:
        return f"starts when {rec.after} has finished"
    deadline = time.monotonic() + wait
    while True:
        try:
            now = read_record(ws.run(rec.id).job_json)
        except NcanvasError:
            return ""
        if now.state != QUEUED or now.progress.get("queued") or time.monotonic() >= deadline:
            return str(now.progress.get("queued") or "") if now.state == QUEUED else ""
        time.sleep(0.05)


def _watch(ws: Any, job_id: str, proc: Any) -> int:
    """Foreground mode: a rich progress bar from job.json until the process exits.

    Ctrl-C stops gracefully; a second one kills the job's whole process group (torchrun's ranks too, not only the
    leader). Ctrl-C is counted by a handler for the whole wait instead of raised as KeyboardInterrupt, so one that
    lands anywhere in the loop is handled and the CLI never exits leaving the job running unwatched."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from core.runrec import read_record

    path = ws.run(job_id).job_json
    with _counting_sigint() as interrupts, Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task(job_id, total=None, info="starting")
        handled = 0
        while proc.poll() is None:
            if interrupts[0] > handled:
                handled = interrupts[0]
                bar.update(task, info=_interrupt(ws, job_id, proc.pid, handled))
            elif not handled:  # once stopping, the line keeps saying so
                try:
                    p = read_record(path).progress
                    info = f"ep {p.get('epoch', '-')} loss {fmt_num(p.get('loss'))} {headline_metric(p)}"
                    bar.update(task, completed=p.get("step") or 0, total=p.get("total_steps"), info=info)
                except NcanvasError:
                    pass  # a record a newer ncanvas wrote, or none yet: the bar waits
            time.sleep(0.25)
    rec = read_record(path)
    typer.echo(f"{job_id} {rec.state}" + (f": {rec.error}" if rec.error else ""))
    return 0 if rec.state in (FINISHED, STOPPED) else 1


@contextlib.contextmanager
def _counting_sigint() -> Iterator[list[int]]:
    """Count SIGINTs (Ctrl-C) into ``hits[0]`` while the block runs, then restore the previous handler."""
    hits = [0]

    def on_sigint(_sig: int, _frame: Any) -> None:
        hits[0] += 1

    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, on_sigint)
        installed = True
    except ValueError:  # not the main thread: Ctrl-C belongs to whoever runs us
        installed = False
    try:
        yield hits
    finally:
        if installed:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def _interrupt(ws: Any, job_id: str, pgid: int, n: int) -> str:
    """The ``n``-th Ctrl-C of a foreground job (a group leader: its pid is its group): stop, then kill the group."""
    from jobs import supervisor

    try:
        if n == 1:
            supervisor.stop(ws, job_id)
        else:
            supervisor.kill(ws, job_id, grace=0.0)
    except NcanvasError:  # ended meanwhile, or not yet holding its lock: signal the group directly
        try:
            os.killpg(pgid, signal.SIGTERM if n == 1 else signal.SIGKILL)
        except ProcessLookupError:
            pass
    return "stopping: saving latest.pt (Ctrl-C again to kill)" if n == 1 else "killed"


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(ckpt_app, name="ckpt")
    app.add_typer(train_app, name="train")
    app.command("logs")(logs_cmd)
    for kind in KINDS:
        train_app.command(kind)(_train_command(kind))
