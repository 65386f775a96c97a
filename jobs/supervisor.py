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
from typing import Any

from core.errors import NcanvasError
from core.gpu import check_gpu_syntax, resolve_gpu
from core.logtext import last_lines
from core.paths import RunPaths, Workspace
from core.runrec import (
    FAILED,
    KILLED,
    LIVE_STATES,
    PAUSED,
    QUEUED,
    RUNNING,
    STOPPING,
    TERMINAL_STATES,
    JobRecord,
    list_jobs,
    load_job,
    next_job_id,
    read_record,
    write_record,
)
from jobs.config import build_config, to_dict
from jobs.kinds import get_kind, kind_config, kind_module
from jobs.locks import exclusive, is_locked

CODE_ROOT = Path(__file__).resolve().parent.parent  # the directory holding core/, jobs/, tui/
LAUNCH_WAIT_S = 15.0  # how long a launched process may take to hold its run lock before it counts as crashed


@dataclass
class JobStatus:
    """A job's record plus what only the live system can tell: effective state, liveness, GPU memory."""

    record: JobRecord
    state: str
    alive: bool
    reason: str | None = None
    gpu_mem_mb: float | None = None
    slurm: dict[str, Any] | None = None  # Slurm jobs: {"job_id", "state", "reason", "nodes"} as Slurm sees them now

    @property
    def starting(self) -> bool:
        """Launched, not yet holding its lock: neither alive nor ended (a queue behind it keeps waiting)."""
        return not self.alive and self.state == QUEUED

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def elapsed_s(self) -> float | None:
        r = self.record
        if r.started is None:
            return None
        return (time.time() if self.alive else (r.ended or time.time())) - r.started

    @property
    def eta_s(self) -> float | None:
        return self.record.progress.get("eta_s") if self.alive else None


# ===================================================================================== status


def _proc_stopped(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def _backend(rec: JobRecord) -> Any:
    """The backend object of a non-local job (:mod:`jobs.backends`); None for a local one (this module)."""
    if rec.backend == "local":
        return None
    from jobs.backends import get_backend

    return get_backend(rec.backend)


def _remote(ws: Workspace, job_id: str) -> Any:
    return _backend(load_job(ws, job_id))


def status_of(ws: Workspace, rec: JobRecord) -> JobStatus:
    if (backend := _backend(rec)) is not None:
        return backend.status(ws, rec)  # type: ignore[no-any-return]
    run = ws.run(rec.id)
    alive = is_locked(run.lock)
    if alive:
        state = PAUSED if _proc_stopped(rec.pid) else rec.state
        if state in (QUEUED, RUNNING) and _stop_marker(run).exists():  # asked to stop; finishing its step
            state = STOPPING
        mem = None
        if state == PAUSED:
            from core.gpu import process_gpu_memory_mb

            mem = process_gpu_memory_mb(_group_pids(rec.pgid))
        return JobStatus(rec, state, True, gpu_mem_mb=mem)
    if rec.state in LIVE_STATES:
        # a launch time far in the future (a clock stepped back, a record from another host) is stale, not starting
        if rec.state == QUEUED and rec.pid is None and -2.0 < time.time() - launched_at(rec) < LAUNCH_WAIT_S:
            return JobStatus(rec, QUEUED, False, reason="starting")
        tail = " | ".join(ln for ln in last_lines(run.stdout, 5) if ln.strip())
        reason = "process ended without a final state (crashed, killed or out of memory)"
        if rec.started is not None:  # its elapsed time stops at its last sign of life, not now
            seen = [p.stat().st_mtime for p in (run.metrics, run.stdout, run.job_json) if p.exists()]
            rec.ended = max(seen, default=None)
        return JobStatus(rec, FAILED, False, reason=f"{reason}; last log: {tail}" if tail else reason)
    return JobStatus(rec, rec.state, False, reason=rec.error)


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
    """Written by ``stop`` before its SIGTERM, removed by ``resume``: a stop request shows at once (the trainer
    only notices at its next step) and a second ``stop`` knows to kill."""
    return run.log_dir / "stop_requested"


def job_status(ws: Workspace, job_id: str) -> JobStatus:
    return status_of(ws, load_job(ws, job_id))


def list_status(ws: Workspace) -> list[JobStatus]:
    recs = list_jobs(ws)
    if any(r.backend == "slurm" for r in recs):  # one squeue for all of them
        from jobs.backends import get_backend

        get_backend("slurm").prefetch(recs)
    return [status_of(ws, r) for r in recs]


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
              foreground: bool = False, preflight: bool = False, backend: str = "local",
              slurm: dict[str, Any] | None = None) -> tuple[JobRecord, subprocess.Popen[bytes] | None]:
    """Validate, create the run directory and job.json, launch the job. Nothing is created on bad input.

    ``preflight`` also runs the kind's heavier checks (a kind module's ``preflight(cfg)``, which may import torch):
    the CLI asks for them; the dashboard does not, to stay free of torch. ``backend="slurm"`` submits a batch job
    instead (``slurm``: its options, see :class:`jobs.backends.slurm_opts.SlurmOptions`); there is no process here
    to return then."""
    spec = get_kind(kind)
    if gpus > 1 and not spec.ddp:
        raise NcanvasError(f"{kind} does not train data-parallel; --gpus must be 1")
    cfg = build_config(kind_config(kind), config)
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
    ws.ensure()
    run = _claim_run_dir(ws, kind, job_id)
    rec = JobRecord(id=run.job_id, kind=kind, config=to_dict(cfg), code=_code_version(), gpu=gpu_sel,
                    nproc=gpus, after=after, max_per_gpu=max_per_gpu, attempts=1)
    rec.argv = job_argv(rec, run, resume=False)
    _mark_launch(rec)
    with exclusive(_control_lock(run)):  # an `rm --force` typed at once waits until the job holds its lock
        write_record(run.job_json, rec)
        proc = _launch(rec, run, resume=False, foreground=foreground)
        if not foreground:
            _wait_started(run, proc)
    return rec, proc


def _claim_run_dir(ws: Workspace, kind: str, job_id: str | None) -> RunPaths:
    for _ in range(1000):
        jid = job_id or next_job_id(ws, kind)
        run = ws.run(jid)
        try:
            run.log_dir.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            if job_id:
                raise NcanvasError(f"job {job_id} already exists") from None
            continue
        run.ckpt_dir.mkdir(parents=True, exist_ok=True)
        return run
    raise NcanvasError("could not allocate a job id")


def resume(ws: Workspace, job_id: str, foreground: bool = False) -> str:
    """Relaunch a stopped/failed/killed job from ``latest.pt``; racing calls start exactly one process."""
    run = ws.run(job_id)
    if (backend := _remote(ws, job_id)) is not None:  # also refuses an unknown id before anything is created
        return backend.resume(ws, job_id)  # type: ignore[no-any-return]
    with exclusive(_control_lock(run)):
        st = _exited(ws, job_id)
        if st.alive or st.starting:
            raise NcanvasError(f"{job_id} is {st.state}; nothing to resume")
        if st.state not in TERMINAL_STATES and st.state != FAILED:
            raise NcanvasError(f"{job_id} is {st.state}; nothing to resume")
        rec = st.record
        if rec.state == "finished" and st.state == "finished":
            raise NcanvasError(f"{job_id} is finished; nothing to resume")
        rec.state, rec.attempts, rec.resume = QUEUED, rec.attempts + 1, True
        rec.ended = rec.exit_code = rec.error = rec.pid = rec.pgid = None  # the new process records its own
        rec.progress.pop("eta_s", None)  # the last attempt's estimate; the new process makes its own
        _mark_launch(rec)  # "starting" from now on, not "crashed" because the job was created long ago
        write_record(run.job_json, rec)
        _stop_marker(run).unlink(missing_ok=True)
        proc = _launch(rec, run, resume=True, foreground=foreground)
        if foreground:
            return f"resumed {job_id}"
        _wait_started(run, proc)
    where = "latest.pt" if run.latest.is_file() else "scratch (no latest.pt yet)"
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
        return backend.pause(ws, job_id)  # type: ignore[no-any-return]
    st = _signalable(ws, job_id, "pause")
    if st.state == PAUSED:
        raise NcanvasError(f"{job_id} is already paused")
    if st.state == STOPPING:
        raise NcanvasError(f"{job_id} is stopping; pausing it now would stall its checkpoint (latest.pt)")
    _signal_group(st.record, signal.SIGSTOP)
    deadline = time.monotonic() + 2.0  # delivery is asynchronous: return once the kernel shows it stopped
    while not _proc_stopped(st.record.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    after = job_status(ws, job_id)
    held = f"; it still holds {after.gpu_mem_mb:.0f} MiB of GPU memory" if after.gpu_mem_mb else ""
    return f"paused {job_id}{held}"


def cont(ws: Workspace, job_id: str) -> str:
    if (backend := _remote(ws, job_id)) is not None:
        return backend.cont(ws, job_id)  # type: ignore[no-any-return]
    st = _live(ws, job_id, "continue")
    if st.state != PAUSED:
        raise NcanvasError(f"{job_id} is {st.state}, not paused")
    _signal_group(st.record, signal.SIGCONT)
    return f"continued {job_id}"


def stop(ws: Workspace, job_id: str, wait: bool = False, timeout: float = 60.0) -> str:
    """SIGTERM: the trainer checkpoints and exits. A second stop, or ``timeout`` when waiting, kills."""
    if (backend := _remote(ws, job_id)) is not None:
        return backend.stop(ws, job_id, wait, timeout)  # type: ignore[no-any-return]
    st = _live(ws, job_id, "stop")
    if st.state == STOPPING:
        return kill(ws, job_id) + " (second stop)"
    st = _signalable(ws, job_id, "stop")
    _stop_marker(ws.run(job_id)).write_text(f"{time.time():.3f}\n")
    _signal_group(st.record, signal.SIGTERM)
    if st.state == PAUSED:
        _signal_group(st.record, signal.SIGCONT)  # a stopped process cannot handle SIGTERM until continued
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
        return backend.kill(ws, job_id, grace)  # type: ignore[no-any-return]
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
    if not _wait_dead(run, grace):
        _signal_group(rec, signal.SIGKILL)
        _wait_dead(run, 10.0)
    _signal_group(rec, signal.SIGKILL)  # stragglers of the group (workers) that outlived the lock holder
    deadline = time.monotonic() + 5.0
    while _group_pids(rec.pgid) and time.monotonic() < deadline:  # exiting processes take a moment to go
        time.sleep(0.02)


def remove(ws: Workspace, job_id: str, force: bool = False) -> str:
    """Delete a job's logs and checkpoints; a live or starting job only with ``force`` (killed first).

    Under the control lock, like resume: a resume racing the deletion either launches before (and is killed here)
    or finds no job."""
    import shutil

    run = ws.run(job_id)
    backend = _remote(ws, job_id)
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
        shutil.rmtree(run.ckpt_dir, ignore_errors=True)
        shutil.rmtree(run.log_dir, ignore_errors=True)
    return f"removed {job_id}"
