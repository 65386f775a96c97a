"""The job supervisor: start, list, pause, continue, stop, resume, kill and remove jobs. No torch.

Jobs are detached processes (own session, stdout+stderr to ``stdout.log``) that outlive the dashboard and the SSH
session. Liveness is the job's flock on ``run.lock``; a job whose lock is free but whose record still says it is
live crashed, and is shown as failed with its last log lines.

That is the ``local`` backend, the code of this module. A job whose record names another backend (``slurm``) is
handed to it (:mod:`jobs.backends`) at the top of each verb, so callers never care where a job runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import JobNotFound, NcanvasError, NoCheckpointToResume
from core.fserrors import describe_os_error
from core.gpu import check_gpu_syntax, resolve_gpu
from core.logtext import last_lines
from core.paths import RunPaths, Workspace, validate_job_id
from core.runrec import (
    FAILED,
    FINISHED,
    KILLED,
    LIVE_STATES,
    PAUSED,
    QUEUED,
    RUNNING,
    STOPPING,
    TERMINAL_STATES,
    JobRecord,
    JobState,
    list_jobs,
    load_job,
    next_job_id,
    read_record,
    unreadable_jobs,
    write_record,
)
from jobs.config import absolute_paths, build_config, to_dict
from jobs.kinds import get_kind, kind_config, kind_module
from jobs.locks import exclusive, is_locked

if TYPE_CHECKING:
    from jobs.backends import Backend

CODE_ROOT = Path(__file__).resolve().parent.parent  # the directory holding core/, jobs/, tui/
LAUNCH_WAIT_S = 15.0  # how long a launched process may take to hold its run lock before it counts as crashed


@dataclass
class JobStatus:
    """A job's record plus what only the live system can tell: effective state, liveness, GPU memory."""

    record: JobRecord
    state: str  # a JobState, or UNREADABLE for a run folder whose record cannot be read
    alive: bool
    reason: str | None = None
    gpu_mem_mb: float | None = None
    slurm: dict[str, Any] | None = None  # Slurm jobs: {"job_id", "state", "reason", "nodes"} as Slurm sees them now
    pauses: tuple[tuple[float, float | None], ...] = ()  # (from, to) of every pause by `jobs pause`; to None: now
    cause: dict[str, Any] | None = None  # why it failed (jobs.triage.Cause.to_json()): code, reason, summary, fix...
    health: tuple[dict[str, str], ...] = ()  # badges while it runs (jobs.health): code, text

    @property
    def outcome(self) -> JobState | None:
        """How the last attempt ended (finished, stopped, failed, killed), None while it is live; why it failed
        is :attr:`cause` (and :attr:`reason`), kept apart from the state as pueue does."""
        return JobState(self.state) if self.state in TERMINAL_STATES else None

    @property
    def note(self) -> str:
        """A few words for a table: the failure's short reason, else the health badges' codes."""
        if self.state == FAILED:
            return str((self.cause or {}).get("reason") or "")
        return ", ".join(b["code"].replace("_", " ") for b in self.health)

    @property
    def starting(self) -> bool:
        """Launched, not yet holding its lock: neither alive nor ended (a queue behind it keeps waiting)."""
        return not self.alive and self.state == QUEUED

    @property
    def id(self) -> str:
        return self.record.id

    def _end(self) -> float:
        r = self.record
        return time.time() if self.alive else (r.ended or time.time())

    @property
    def elapsed_s(self) -> float | None:
        """Training time over every attempt: the earlier attempts' (``prior_s``) plus this one's since it left the
        queue, paused time excluded (see :attr:`paused_s`)."""
        r = self.record
        if r.started is None:
            return r.prior_s or None
        end = self._end()
        return r.prior_s + max(0.0, end - r.started - paused_between(self.pauses, r.started, end))

    @property
    def paused_s(self) -> float:
        """Seconds spent paused (``jobs pause`` to ``jobs cont``), over every attempt."""
        return paused_between(self.pauses, 0.0, self._end())

    @property
    def eta_s(self) -> float | None:
        """The job's own estimate, while it runs (a paused job has none: its clock stands still)."""
        return self.record.progress.get("eta_s") if self.alive and self.state != PAUSED else None


def paused_between(pauses: tuple[tuple[float, float | None], ...], start: float, end: float) -> float:
    """Seconds of ``pauses`` (an open one lasts until ``end``) that fall between ``start`` and ``end``."""
    return sum(max(0.0, min(b if b is not None else end, end) - max(a, start)) for a, b in pauses)


# ===================================================================================== status


def _proc_stopped(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def _backend(rec: JobRecord) -> Backend | None:
    """The backend object of a non-local job (:mod:`jobs.backends`); None for a local one (this module)."""
    if rec.backend == "local":
        return None
    from jobs.backends import get_backend

    return get_backend(rec.backend)


def _remote(ws: Workspace, job_id: str) -> Backend | None:
    return _backend(load_job(ws, job_id))


def status_of(ws: Workspace, rec: JobRecord) -> JobStatus:
    if (backend := _backend(rec)) is not None:
        return backend.status(ws, rec)
    run = ws.run(rec.id)
    alive = is_locked(run.lock)
    pauses = read_pauses(run)
    if alive:
        state = PAUSED if _proc_stopped(rec.pid) else rec.state
        if state in (QUEUED, RUNNING) and _stop_marker(run).exists():  # asked to stop; finishing its step
            state = STOPPING
        mem = None
        if state == PAUSED:
            from core.gpu import process_gpu_memory_mb

            mem = process_gpu_memory_mb(_group_pids(rec.pgid))
        return JobStatus(rec, state, True, gpu_mem_mb=mem, pauses=pauses, health=_health(rec, state))
    if rec.state in LIVE_STATES:
        # a launch time far in the future (a clock stepped back, a record from another host) is stale, not starting
        if rec.state == QUEUED and rec.pid is None and -2.0 < time.time() - launched_at(rec) < LAUNCH_WAIT_S:
            return JobStatus(rec, QUEUED, False, reason="starting", pauses=pauses)
        if rec.started is not None:  # its elapsed time stops at its last sign of life, not now
            seen = [p.stat().st_mtime for p in (run.metrics, run.stdout, run.job_json) if p.exists()]
            rec.ended = max(seen, default=None)
        cause = _vanished_cause(run, rec)
        return JobStatus(rec, FAILED, False, reason=cause["summary"], pauses=pauses, cause=cause)
    return JobStatus(rec, rec.state, False, reason=rec.error, pauses=pauses,
                     cause=rec.cause if rec.state == FAILED else None)


_VANISHED: dict[tuple[Any, ...], dict[str, Any]] = {}  # diagnoses of vanished processes, by what they read


def _vanished_cause(run: RunPaths, rec: JobRecord) -> dict[str, Any]:
    """Why a process ended without writing a final state (see :func:`_diagnose_vanished`). Decided once per state
    of its files, not at every listing: the dashboard lists every job each second, and a crashed job keeps its
    live state in job.json until it is resumed."""
    stamps = tuple((p.stat().st_mtime_ns, p.stat().st_size) if p.exists() else None
                   for p in (run.job_json, run.stdout, _stop_marker(run), run.latest))
    key = (str(run.log_dir), rec.attempts, rec.pid, stamps)
    if key not in _VANISHED:
        if len(_VANISHED) >= 256:
            _VANISHED.clear()
        _VANISHED[key] = _diagnose_vanished(run, rec)
    return dict(_VANISHED[key])


def _diagnose_vanished(run: RunPaths, rec: JobRecord) -> dict[str, Any]:
    """The stop marker, the cgroup's OOM kills since it started, its last heartbeat's memory, a reboot, a
    fatal-error line in its log (:mod:`jobs.triage`)."""
    from jobs.evidence import from_vanished
    from jobs.triage import diagnose

    tail = last_lines(run.stdout, 80)
    ev = from_vanished(job_id=rec.id, kind=rec.kind, config=rec.config, progress=rec.progress,
                       stop_requested=_stop_marker(run).exists(), log_tail=tail,
                       latest_kept=run.latest.is_file())
    cause = diagnose(ev).to_json()
    last = [ln for ln in tail if ln.strip()][-3:]
    cause["evidence"] = [*cause["evidence"], *(f"log: {ln.strip()}" for ln in last)]
    return cause


def _health(rec: JobRecord, state: str) -> tuple[dict[str, str], ...]:
    """The job's own badges (its heartbeat) and, for a running job that stopped beating, ``stalled``."""
    from jobs.health import stalled

    raw = rec.progress.get("health")
    badges = [b for b in raw if isinstance(b, dict) and isinstance(b.get("code"), str)] if isinstance(raw, list) else []
    if state == RUNNING and (b := stalled(rec.progress, time.time())) is not None:
        badges.append(b.to_json())
    return tuple({"code": str(b["code"]), "text": str(b.get("text", ""))} for b in badges)


# ===================================================================================== pauses


def _pauses_file(run: RunPaths) -> Path:
    """One line ``{"from": t, "to": t}`` per finished pause, appended by ``cont`` (and stop, kill, resume)."""
    return run.log_dir / "pauses.jsonl"


def _paused_since(run: RunPaths) -> Path:
    """Written by ``pause`` once the group is stopped: when the pause began (the job cannot note it itself)."""
    return run.log_dir / "paused_since"


def read_pauses(run: RunPaths) -> tuple[tuple[float, float | None], ...]:
    """Every pause of the job, the one going on (``to`` None) last; nothing when it was never paused."""
    import json

    out: list[tuple[float, float | None]] = []
    try:
        for line in _pauses_file(run).read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                out.append((float(row["from"]), float(row["to"])))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line of a killed writer: that pause is lost, not the listing
    except OSError:
        pass
    try:
        out.append((float(_paused_since(run).read_text()), None))
    except (OSError, ValueError):
        pass
    return tuple(out)


def _end_pause(run: RunPaths, at: float | None = None) -> None:
    """Close the pause going on, if any (``cont``; ``stop``/``kill`` continue the group to end it)."""
    import json

    marker = _paused_since(run)
    try:
        began = float(marker.read_text())
    except (OSError, ValueError):
        return
    end = time.time() if at is None else max(at, began)
    with open(_pauses_file(run), "a", encoding="utf-8") as f:
        f.write(json.dumps({"from": round(began, 3), "to": round(end, 3)}) + "\n")
    marker.unlink(missing_ok=True)


def launched_at(rec: JobRecord) -> float:
    """When this attempt's process was launched (``progress["launched"]``, set by start and resume): a resumed job
    is as new as its relaunch, however old its ``created``. Records from before launches were timed use ``created``."""
    t = rec.progress.get("launched")
    return float(t) if isinstance(t, (int, float)) else (rec.created or 0.0)


def _mark_launch(rec: JobRecord) -> None:
    rec.progress["launched"] = round(time.time(), 3)


def _control_lock(run: RunPaths) -> Path:
    """Serialises the verbs that launch or delete (start, resume, kill's record, rm) on one job."""
    return run.log_dir / "control.lock"


def _stop_marker(run: RunPaths) -> Path:
    """Written by ``stop`` before its SIGTERM (a stop request shows at once, the trainer only notices at its next
    step, and a second ``stop`` knows to kill), by the job itself on a SIGTERM from elsewhere; removed by
    ``resume``. A live job with this file is ``stopping``: the one place that state comes from."""
    return run.stop_request


def job_status(ws: Workspace, job_id: str) -> JobStatus:
    return status_of(ws, load_job(ws, job_id))


UNREADABLE = "unreadable"  # the state shown for a run folder whose job.json cannot be read


def list_status(ws: Workspace, unreadable: bool = False) -> list[JobStatus]:
    """Every job's status, oldest first; with ``unreadable``, also a row in state ``unreadable`` (its reason says
    why) for each run folder whose record cannot be read, so that nothing in the workspace is hidden."""
    recs = list_jobs(ws)
    if any(r.backend == "slurm" for r in recs):  # one squeue for all of them
        from jobs.backends import get_backend

        get_backend("slurm").prefetch(recs)
    out = [status_of(ws, r) for r in recs]
    if unreadable:
        for job_id, why in unreadable_jobs(ws):
            out.append(JobStatus(JobRecord(id=job_id, kind="?", created=_folder_time(ws.run(job_id))), UNREADABLE,
                                 False, reason=why))
    return out


def _folder_time(run: RunPaths) -> float:
    for p in (run.log_dir, run.ckpt_dir):
        try:
            return p.lstat().st_mtime
        except OSError:
            continue
    return 0.0


def _group_pids(pgid: int | None) -> set[int]:
    if not pgid:
        return set()
    pids = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", encoding="ascii") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":  # zombies are dead, only not yet reaped
                    pids.add(int(d))
            except (OSError, IndexError, ValueError):
                continue
    return pids


# ===================================================================================== start / resume


def _code_version() -> dict[str, Any]:
    info: dict[str, Any] = {"root": str(CODE_ROOT)}
    try:
        commit = subprocess.run(["git", "-C", str(CODE_ROOT), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5)
        if commit.returncode == 0:
            info["commit"] = commit.stdout.strip()
            dirty = subprocess.run(["git", "-C", str(CODE_ROOT), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5)
            info["dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def job_argv(rec: JobRecord, run: RunPaths, resume: bool) -> list[str]:
    module = get_kind(rec.kind).module
    tail = ["-m", module, "--run-dir", str(run.log_dir)] + (["--resume"] if resume else [])
    if rec.nproc > 1:  # DDP through torchrun: one process per GPU (gloo ranks when on the CPU)
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={rec.nproc}", *tail]
    return [sys.executable, *tail]


def _env(rec: JobRecord) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(CODE_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    # rec.gpu holds NVML indices (core.gpu.resolve_gpu), which follow the PCI bus; CUDA's default order
    # (fastest first) may differ
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    env["CUDA_VISIBLE_DEVICES"] = "" if rec.gpu == "cpu" else rec.gpu
    return env


def _launch(rec: JobRecord, run: RunPaths, resume: bool, foreground: bool = False) -> subprocess.Popen[bytes]:
    argv = job_argv(rec, run, resume)
    with open(run.stdout, "ab") as out:
        # Always a process group of its own: pause/stop/kill signal the group, which must never be the caller's
        # shell. Detached jobs also get their own session (no terminal, survive the SSH session); a --foreground
        # job stays in the caller's session, and the caller turns Ctrl-C into a graceful stop.
        group: dict[str, Any] = {"start_new_session": True} if not foreground else (
            {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp})
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=str(run.log_dir), env=_env(rec), **group)
    # Reap it if we outlive it (the dashboard), so no zombie lingers; the job does not depend on us.
    threading.Thread(target=proc.wait, name=f"reap-{rec.id}", daemon=True).start()
    return proc


def _wait_started(run: RunPaths, proc: subprocess.Popen[bytes], timeout: float = LAUNCH_WAIT_S) -> None:
    """Return once the new process holds the run lock (or has already exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_locked(run.lock) or proc.poll() is not None:
            return
        time.sleep(0.02)


def start_job(ws: Workspace, kind: str, config: dict[str, Any], *, gpu: str = "auto", gpus: int = 1,
              after: str | None = None, max_per_gpu: int = 1, job_id: str | None = None,
              foreground: bool = False, preflight: bool = False,
              cwd: str | os.PathLike[str] | None = None, backend: str = "local",
              slurm: dict[str, Any] | None = None) -> tuple[JobRecord, subprocess.Popen[bytes] | None]:
    """Validate, create the run directory and job.json, launch the job. Nothing is created on bad input, and a
    creation that fails half-way (a full disk) removes what it made.

    Path options are made absolute against ``cwd`` (default: the current directory) and must exist: the job runs
    in ``logs/<id>``. ``preflight`` also runs the kind's heavier checks (a kind module's ``preflight(cfg)``, which
    may import torch): the CLI asks for them; the dashboard does not, to stay free of torch. ``backend="slurm"``
    submits a batch job instead (``slurm``: its options, see :class:`jobs.backends.slurm_opts.SlurmOptions`);
    there is no process here to return then."""
    spec = get_kind(kind)
    if gpus > 1 and not spec.ddp:
        raise NcanvasError(f"{kind} does not train data-parallel; --gpus must be 1")
    cfg_cls = kind_config(kind)
    cfg = build_config(cfg_cls, absolute_paths(cfg_cls, config, cwd))
    check = getattr(kind_module(kind), "preflight", None)
    if preflight and check is not None:
        check(cfg)
    if after is not None:
        load_job(ws, after)  # refuse an unknown dependency before creating anything
    if backend != "local":
        if foreground:
            raise NcanvasError(f"--foreground runs on this machine; follow a {backend} job with: ncanvas logs ID -f")
        from jobs.backends import get_backend

        return get_backend(backend).submit(ws, kind, cfg, gpu=gpu, gpus=gpus, after=after, job_id=job_id,
                                           options=slurm or {}), None
    if slurm:
        raise NcanvasError(f"--{next(iter(slurm)).replace('_', '-')} is a Slurm option: add --backend slurm")
    check_gpu_syntax(gpu)  # even for CPU-only kinds: a typo is an error, not silently ignored
    gpu_sel = "cpu" if not spec.uses_gpu else resolve_gpu(gpu, gpus)
    if gpu_sel != "cpu" and len(gpu_sel.split(",")) < gpus:
        raise NcanvasError(f"--gpus {gpus}: only {len(gpu_sel.split(','))} GPU(s) available")
    check_launch(gpu_sel, gpus, max_per_gpu, "--gpus")
    try:
        ws.ensure()
        run, made_ckpt_dir = _claim_run_dir(ws, kind, job_id)
    except OSError as e:
        raise _creation_error(ws, e, f"job {job_id or kind} was not created") from None
    rec = JobRecord(id=run.job_id, kind=kind, config=to_dict(cfg), code=_code_version(), gpu=gpu_sel,
                    nproc=gpus, after=after, max_per_gpu=max_per_gpu, attempts=1)
    rec.argv = job_argv(rec, run, resume=False)
    _mark_launch(rec)
    proc = None
    try:
        with exclusive(_control_lock(run)):  # an `rm --force` typed at once waits until the job holds its lock
            write_record(run.job_json, rec)
            proc = _launch(rec, run, resume=False, foreground=foreground)
            if not foreground:
                _wait_started(run, proc)
    except BaseException as e:
        if proc is not None:
            raise
        _discard(run, made_ckpt_dir)  # nothing half-made stays: `train --name X` works again at once
        if isinstance(e, OSError):
            raise _creation_error(ws, e, f"job {run.job_id} was not created") from None
        raise
    return rec, proc


def check_launch(gpu: str, nproc: int, max_per_gpu: int, what: str = "nproc") -> None:
    """Bounds of what a launch starts: ``nproc`` processes (one per GPU, or gloo ranks up to the CPU cores) and a
    per-GPU limit that is not negative; read back from an edited job.json too."""
    if not isinstance(nproc, int) or nproc < 1:
        raise NcanvasError(f"{what} must be at least 1; got {nproc!r}")
    if gpu == "cpu":
        cores = os.cpu_count() or 1
        if nproc > cores:
            raise NcanvasError(f"{what} {nproc}: this machine has {cores} CPU cores (one process each on the CPU)")
    elif nproc > len(gpu.split(",")):
        raise NcanvasError(f"{what} {nproc}: the job has {len(gpu.split(','))} GPU(s) ({gpu}), one process each")
    if max_per_gpu < 0:
        raise NcanvasError(f"max_per_gpu must be 0 (no limit) or more; got {max_per_gpu}")


def _creation_error(ws: Workspace, e: BaseException, what: str) -> NcanvasError:
    """One line for a file-system error while creating or relaunching a job (a full disk, a read-only
    workspace)."""
    import errno

    desc = describe_os_error(e, where=ws.logs, kept=what) or f"{type(e).__name__}: {e}; {what}"
    err = e if isinstance(e, OSError) else None
    if err is not None and err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        desc += f" (the workspace {ws.root} is not writable; --home DIR or NCANVAS_HOME picks another)"
    return NcanvasError(desc)


def _claim_run_dir(ws: Workspace, kind: str, job_id: str | None) -> tuple[RunPaths, bool]:
    """A new ``logs/<id>`` (this call made it) and its checkpoint folder; True when that was made here too."""
    for _ in range(1000):
        jid = job_id or next_job_id(ws, kind)
        run = ws.run(jid)
        try:
            run.log_dir.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            if job_id:
                if not run.job_json.is_file():
                    raise NcanvasError(f"a folder {run.log_dir} without job.json is in the way (a creation that "
                                       f"failed half-way?); ncanvas jobs rm {job_id} removes it") from None
                raise NcanvasError(f"job {job_id} already exists") from None
            continue
        made = not run.ckpt_dir.exists()
        try:
            run.ckpt_dir.mkdir(parents=True, exist_ok=True)
        except BaseException:
            _discard(run, made)
            raise
        return run, made
    raise NcanvasError("could not allocate a job id")


def _discard(run: RunPaths, ckpt_dir_too: bool) -> None:
    """Remove the folders of a job whose creation failed (made by this process a moment ago)."""
    import shutil

    shutil.rmtree(run.log_dir, ignore_errors=True)
    if ckpt_dir_too:
        shutil.rmtree(run.ckpt_dir, ignore_errors=True)


def check_record(rec: JobRecord) -> None:
    """A record read back before a relaunch: kind, config, GPUs and process count within bounds (job.json may
    have been edited by hand), each problem one line naming job.json."""
    try:
        get_kind(rec.kind)
        build_config(kind_config(rec.kind), rec.config)
        if rec.after is not None:
            validate_job_id(rec.after)
        if rec.gpu != "cpu" and not all(part.strip() for part in rec.gpu.split(",")):
            raise NcanvasError(f"gpu must be cpu or GPU ids; got {rec.gpu!r}")
        check_launch(rec.gpu, rec.nproc, rec.max_per_gpu)
    except NcanvasError as e:
        raise NcanvasError(f"{rec.id}: job.json: {e}") from None


def _has_metric_rows(run: RunPaths) -> bool:
    """Whether the job logged any training row (events aside): reads until the first one."""
    import json

    try:
        with open(run.metrics, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and "event" not in row and "step" in row:
                    return True
    except OSError:
        pass
    return False


def _archive_attempt(run: RunPaths, attempt: int) -> list[str]:
    """Move the earlier attempts' ``metrics.jsonl`` (and ``latest.pt``) aside as ``*.attempt-N.*`` before a
    restart from scratch, so that the new curve does not continue the old one. Returns the new names."""
    moved = []
    for path in (run.metrics, run.latest):
        if not path.exists():
            continue
        n, stem = attempt, path.name.rsplit(".", 1)
        while (target := path.with_name(f"{stem[0]}.attempt-{n}.{stem[1]}")).exists():
            n += 1
        os.replace(path, target)
        moved.append(target.name)
    return moved


def resume(ws: Workspace, job_id: str, foreground: bool = False, from_scratch: bool = False) -> str:
    """Relaunch a stopped/failed/killed job from ``latest.pt``; racing calls start exactly one process.

    A job that logged steps but has no ``latest.pt`` raises :class:`NoCheckpointToResume` (a plain resume would
    start over at step 0 under the old curve): ``from_scratch=True`` asks for that restart, and moves the earlier
    rows to ``metrics.attempt-N.jsonl`` first (and an existing ``latest.pt`` to ``latest.attempt-N.pt``). A job
    that never logged a step (it failed or was stopped while queued) starts from scratch without asking."""
    run = ws.run(job_id)
    if (backend := _remote(ws, job_id)) is not None:  # also refuses an unknown id before anything is created
        return backend.resume(ws, job_id, from_scratch=from_scratch)
    with exclusive(_control_lock(run)):
        st = _exited(ws, job_id)
        if st.alive or st.starting:
            raise NcanvasError(f"{job_id} is {st.state}; nothing to resume")
        if st.state not in TERMINAL_STATES and st.state != FAILED:
            raise NcanvasError(f"{job_id} is {st.state}; nothing to resume")
        rec = st.record
        if rec.state == FINISHED and st.state == FINISHED:
            raise NcanvasError(f"{job_id} is finished; nothing to resume")
        check_record(rec)
        fresh = from_scratch or not run.latest.is_file()
        if fresh and not from_scratch and _has_metric_rows(run):
            raise NoCheckpointToResume(job_id)
        try:
            archived = _archive_attempt(run, rec.attempts) if from_scratch else []
            _end_pause(run, at=rec.ended)
            rec.prior_s = 0.0 if from_scratch else (st.elapsed_s or 0.0)  # this attempt's clock starts at 0
            rec.state, rec.attempts, rec.resume = QUEUED, rec.attempts + 1, not fresh
            rec.started = rec.ended = rec.exit_code = rec.pid = rec.pgid = None  # the new process's
            rec.error = rec.cause = None
            rec.progress.pop("eta_s", None)  # the last attempt's estimate; the new process makes its own
            if from_scratch:
                rec.progress = {}
            _mark_launch(rec)  # "starting" from now on, not "crashed" because the job was created long ago
            write_record(run.job_json, rec)
        except OSError as e:
            raise _creation_error(ws, e, f"{job_id} was not resumed") from None
        _stop_marker(run).unlink(missing_ok=True)
        proc = _launch(rec, run, resume=not fresh, foreground=foreground)
        if foreground:
            return f"resumed {job_id}" + (" from scratch" if fresh else "")
        _wait_started(run, proc)
    if from_scratch:
        kept = f"; the earlier attempt is kept as {' and '.join(archived)}" if archived else ""
        return f"restarted {job_id} from scratch{kept}"
    where = "latest.pt" if not fresh else "scratch (it had not logged a step yet)"
    return f"resumed {job_id} from {where}"


# ===================================================================================== signals


def _signal_group(rec: JobRecord, sig: int) -> bool:
    if not rec.pgid:
        return False
    try:
        os.killpg(rec.pgid, sig)
        return True
    except ProcessLookupError:
        return False


def _status_once(ws: Workspace, job_id: str, passing: Callable[[JobStatus], bool], timeout: float) -> JobStatus:
    """The job's status once ``passing(status)`` no longer holds, polled for at most ``timeout`` seconds (on this
    process's own clock, whatever the record says)."""
    st = job_status(ws, job_id)
    deadline = time.monotonic() + timeout
    while passing(st) and time.monotonic() < deadline:
        time.sleep(0.05)
        st = job_status(ws, job_id)
    return st


def _settled(ws: Workspace, job_id: str) -> JobStatus:
    """The job's status once a launch in progress has resolved: alive (it took its lock) or crashed. Bounded by
    ``LAUNCH_WAIT_S``, after which a launch that never took its lock reads as failed."""
    return _status_once(ws, job_id, lambda st: st.starting, LAUNCH_WAIT_S)


def _exited(ws: Workspace, job_id: str, wait: float = 5.0) -> JobStatus:
    """The job's status, after giving a process that has written its final state a moment to exit (it holds its
    lock until then): a job that just finished or failed is not live."""
    return _status_once(ws, job_id, lambda st: st.alive and st.state not in LIVE_STATES, wait)


def _live(ws: Workspace, job_id: str, verb: str) -> JobStatus:
    st = _settled(ws, job_id)
    # a process that has written its final state still holds its lock for the moment it takes to exit
    if not st.alive or st.state not in LIVE_STATES:
        raise NcanvasError(f"{job_id} is {st.state}; nothing to {verb}")
    return st


def _signalable(ws: Workspace, job_id: str, verb: str, wait: float = 10.0) -> JobStatus:
    """A live job whose process group is on record: a job that has just taken its lock writes its pid and group
    a moment later, and a signal before that would reach nobody."""
    st = _live(ws, job_id, verb)
    deadline = time.monotonic() + wait
    while not st.record.pgid and time.monotonic() < deadline:
        time.sleep(0.05)
        st = _live(ws, job_id, verb)
    if not st.record.pgid:
        raise NcanvasError(f"{job_id} is still starting; try to {verb} it again in a moment")
    return st


def pause(ws: Workspace, job_id: str) -> str:
    if (backend := _remote(ws, job_id)) is not None:
        return backend.pause(ws, job_id)
    st = _signalable(ws, job_id, "pause")
    if st.state == PAUSED:
        raise NcanvasError(f"{job_id} is already paused")
    if st.state == STOPPING:
        raise NcanvasError(f"{job_id} is stopping; pausing it now would stall its checkpoint (latest.pt)")
    _signal_group(st.record, signal.SIGSTOP)
    deadline = time.monotonic() + 2.0  # delivery is asynchronous: return once the kernel shows it stopped
    while not _proc_stopped(st.record.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    _paused_since(ws.run(job_id)).write_text(f"{time.time():.3f}\n")  # paused time is not training time
    after = job_status(ws, job_id)
    held = f"; it still holds {after.gpu_mem_mb:.0f} MiB of GPU memory" if after.gpu_mem_mb else ""
    return f"paused {job_id}{held}"


def cont(ws: Workspace, job_id: str) -> str:
    if (backend := _remote(ws, job_id)) is not None:
        return backend.cont(ws, job_id)
    st = _live(ws, job_id, "continue")
    if st.state != PAUSED:
        raise NcanvasError(f"{job_id} is {st.state}, not paused")
    _signal_group(st.record, signal.SIGCONT)
    _end_pause(ws.run(job_id))
    return f"continued {job_id}"


def stop(ws: Workspace, job_id: str, wait: bool = False, timeout: float = 60.0) -> str:
    """SIGTERM: the trainer checkpoints and exits. A second stop, or ``timeout`` when waiting, kills."""
    if (backend := _remote(ws, job_id)) is not None:
        return backend.stop(ws, job_id, wait, timeout)
    st = _live(ws, job_id, "stop")
    if st.state == STOPPING:
        return kill(ws, job_id) + " (second stop)"
    st = _signalable(ws, job_id, "stop")
    _stop_marker(ws.run(job_id)).write_text(f"{time.time():.3f}\n")
    _signal_group(st.record, signal.SIGTERM)
    if st.state == PAUSED:
        _signal_group(st.record, signal.SIGCONT)  # a stopped process cannot handle SIGTERM until continued
    _end_pause(ws.run(job_id))
    if not wait:
        return f"stopping {job_id} (it saves latest.pt, then exits)"
    if _wait_dead(ws.run(job_id), timeout):
        return f"stopped {job_id}"
    return kill(ws, job_id) + f" (no exit within {timeout:.0f}s of stop)"


def _wait_dead(run: RunPaths, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_locked(run.lock):
            return True
        time.sleep(0.05)
    return not is_locked(run.lock)


def kill(ws: Workspace, job_id: str, grace: float = 5.0) -> str:
    """SIGTERM, ``grace`` seconds, then SIGKILL to the whole process group; state becomes killed."""
    if (backend := _remote(ws, job_id)) is not None:
        return backend.kill(ws, job_id, grace)
    run = ws.run(job_id)
    _terminate(ws, job_id, grace)
    with exclusive(_control_lock(run)):
        rec = read_record(run.job_json)
        rec.state, rec.ended = KILLED, time.time()
        rec.error = rec.error or "killed by user"
        write_record(run.job_json, rec)
    return f"killed {job_id}"


def _terminate(ws: Workspace, job_id: str, grace: float) -> None:
    """End every process of the job's group (torchrun ranks and workers too) and wait until none remains."""
    st = _signalable(ws, job_id, "kill")
    rec, run = st.record, ws.run(job_id)
    _signal_group(rec, signal.SIGTERM)
    _signal_group(rec, signal.SIGCONT)
    _end_pause(run)
    if not _wait_dead(run, grace):
        _signal_group(rec, signal.SIGKILL)
        _wait_dead(run, 10.0)
    _signal_group(rec, signal.SIGKILL)  # stragglers of the group (workers) that outlived the lock holder
    deadline = time.monotonic() + 5.0
    while _group_pids(rec.pgid) and time.monotonic() < deadline:  # exiting processes take a moment to go
        time.sleep(0.02)


def remove(ws: Workspace, job_id: str, force: bool = False) -> str:
    """Delete a job's logs and checkpoints; a live or starting job only with ``force`` (killed first), and a job
    that queued jobs wait for (``--after``) only with ``force`` (they then fail, saying why).

    Under the control lock, like resume: a resume racing the deletion either launches before (and is killed here)
    or finds no job. A run folder whose record cannot be read (or that has none: a creation that failed half-way)
    is removed too, unless a process still holds its run lock. A run folder that is a symlink loses the link only;
    what it points to is left alone, and the message says so."""
    run = ws.run(job_id)
    try:
        load_job(ws, job_id)
    except JobNotFound:
        if not any(p.exists() or p.is_symlink() for p in (run.log_dir, run.ckpt_dir)):
            raise
        return _remove_unreadable(ws, run, "its folders (no job.json)")
    except NcanvasError:
        return _remove_unreadable(ws, run, "its folders (an unreadable job.json)")
    backend = _backend(load_job(ws, job_id))
    with exclusive(_control_lock(run)):
        st = _exited(ws, job_id)
        if st.alive or st.starting:
            if not force:
                what = "starting" if st.starting else st.state
                raise NcanvasError(f"{job_id} is {what}; stop it first or use --force")
            if backend is not None:  # a Slurm job: cancelled, and gone from Slurm's queue, before its files go
                backend.cancel(ws, st.record, grace=2.0)
            elif _settled(ws, job_id).alive:  # a starting job is killed once it holds its lock (or has crashed)
                _terminate(ws, job_id, grace=2.0)
        waiters = _waiting_for(ws, job_id)
        if waiters and not force:
            raise NcanvasError(f"{', '.join(waiters)} {'waits' if len(waiters) == 1 else 'wait'} for {job_id} "
                               f"(--after); remove {'it' if len(waiters) == 1 else 'them'} first, or use --force "
                               f"(then {'it fails' if len(waiters) == 1 else 'they fail'})")
        notes = _delete_run(run)
    then = f"; {', '.join(waiters)} will fail (its --after job is gone)" if waiters else ""
    return f"removed {job_id}{notes}{then}"


def _waiting_for(ws: Workspace, job_id: str) -> list[str]:
    """Live (queued or starting) jobs whose ``--after`` is ``job_id``."""
    return [st.id for st in list_status(ws) if st.record.after == job_id and (st.alive or st.starting)]


def _remove_unreadable(ws: Workspace, run: RunPaths, what: str) -> str:
    if is_locked(run.lock):
        raise NcanvasError(f"{run.job_id}: a process still holds {run.lock}; kill it first")
    notes = _delete_run(run)
    return f"removed {run.job_id}: {what}{notes}"


def _delete_run(run: RunPaths) -> str:
    """Delete the job's two folders; a folder that is a symlink loses the link only. Returns what the message
    should add (links whose targets were left); a folder that cannot be deleted is one error line."""
    import shutil

    notes, failed = [], []
    for folder in (run.ckpt_dir, run.log_dir):
        if folder.is_symlink():
            target = os.path.realpath(folder)
            folder.unlink()
            notes.append(f"{folder.parent.name}/{folder.name} was a link: removed it, left {target} in place")
        elif folder.exists():
            def note(_f: Any, path: str, exc: Any) -> None:
                failed.append(f"{path}: {exc[1] if isinstance(exc, tuple) else exc}")

            if sys.version_info >= (3, 12):
                shutil.rmtree(folder, onexc=note)
            else:
                shutil.rmtree(folder, onerror=note)
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise NcanvasError(f"could not remove all of {run.job_id}: {failed[0]}{more}")
    return f" ({'; '.join(notes)})" if notes else ""
