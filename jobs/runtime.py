"""The trainer-side runtime that every training entry point runs under.

``python -m jobs.<kind> --run-dir logs/<id> [--resume]`` calls :func:`run_job`, which takes the run lock (the
job's liveness), waits its turn in the queue (``--after``, per-GPU slots), installs graceful-stop signal handling,
writes state and heartbeat into ``job.json`` and events into ``metrics.jsonl``, and turns the training function's
outcome into a final state: finished, stopped or failed.

Under Slurm (``NCANVAS_BACKEND=slurm``, set by the batch script) there is a second request besides stop: SIGUSR1,
Slurm's warning before the time limit (``--signal=USR1@N``) or a preemption, asks for a requeue. The loop sees it
as a stop (it finishes its step and saves ``latest.pt``), then the job records a ``requeued`` event, goes back to
``queued`` and exits with :data:`EXIT_REQUEUE`, on which the batch script runs ``scontrol requeue``; the next run
resumes from ``latest.pt``. At most ``NCANVAS_MAX_REQUEUES`` times: after that the warning is an ordinary stop.
A SIGTERM under Slurm that ncanvas did not ask for (no stop request file when it came) comes from Slurm
itself: a preemption or requeue (``PreemptMode=REQUEUE``, ``scontrol requeue``), a time limit, a cancel. The job
saves ``latest.pt`` the same way and goes back to ``queued``; if Slurm runs it again, it resumes from there (those
requeues are Slurm's, not bounded here), and if Slurm ends it instead, the backend reads Slurm's ending.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from core.errors import JobNotFound, NcanvasError
from core.fserrors import describe_os_error
from core.metrics import MetricsWriter
from core.paths import RunPaths, Workspace
from core.runrec import (
    FAILED,
    FINISHED,
    KILLED,
    QUEUED,
    RUNNING,
    STOPPED,
    JobRecord,
    JobState,
    read_record,
    write_record,
)
from jobs.config import build_config
from jobs.evidence import code_root, from_exception, start_facts
from jobs.locks import FileLock
from jobs.triage import diagnose

if TYPE_CHECKING:
    import torch

HEARTBEAT_S = 1.0
EXIT_ALREADY_RUNNING = 3
EXIT_REQUEUE = 75  # Slurm: latest.pt saved after the walltime warning; the batch script requeues the job
# Slurm: stopped (latest.pt saved) but not finished. Non-zero, so that Slurm's ``afterok`` dependents wait for a run
# that finishes, as ``--after`` does locally. A local stopped job exits 0.
EXIT_STOPPED_SLURM = 76


class JobRuntime:
    """What a training function gets: paths, config, device, metrics, checkpoints, stop requests."""

    def __init__(self, paths: RunPaths, record: JobRecord, config: Any, resuming: bool = False,
                 get_time: Callable[[], float] = time.time) -> None:
        self.paths = paths
        self.record = record
        self.config = config
        self.kind = record.kind
        self.resuming = resuming
        self._time = get_time
        self.metrics = MetricsWriter(paths.metrics, get_time=get_time)
        self._stop = False
        self._requeue = False  # SIGUSR1 under Slurm: checkpoint, then run again (a stop request wins over it)
        self._stop_from_elsewhere = False  # the SIGTERM came without a stop request file (see request_stop)
        self._last_beat = 0.0
        self._resume_ckpt: dict[str, Any] | None = None
        self._latest_step: int | None = None  # the step of the latest.pt on disk, as far as this process knows
        self._start_step: int | None = None
        self._start_time = get_time()
        self._device: torch.device | None = None
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self._dist_ready = False

    # --------------------------------------------------------------------------------- state and records
    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def write_state(self, state: JobState, **fields: Any) -> None:
        if not self.is_main:
            return
        self.record.state = state
        for k, v in fields.items():
            setattr(self.record, k, v)
        write_record(self.paths.job_json, self.record)

    def log(self, **row: Any) -> None:
        """One metrics row (``step``, ``split`` and metric keys); only rank 0 writes."""
        if self.is_main:
            self.metrics.log(**row)

    def event(self, name: str, **fields: Any) -> None:
        if self.is_main:
            self.metrics.event(name, **fields)

    def progress(self, *, step: int, total_steps: int | None = None, epoch: int | None = None,
                 total_epochs: int | None = None, force: bool = False, **last: Any) -> None:
        """Heartbeat: progress and ETA into ``job.json``, at most once a second unless ``force``."""
        now = self._time()
        if self._start_step is None:
            self._start_step, self._start_time = step, now
        eta = None
        done = step - self._start_step
        if total_steps and done > 0 and step <= total_steps:
            eta = (now - self._start_time) / done * (total_steps - step)
        prog: dict[str, Any] = {"step": step, "total_steps": total_steps, "epoch": epoch, "total_epochs": total_epochs,
                "eta_s": None if eta is None else round(eta, 1), "heartbeat": round(now, 3)}
        kept = {k: v for k, v in self.record.progress.items() if k not in prog and k != "queued"}
        prog = {**kept, **prog}  # metrics from earlier calls stay until replaced
        prog.update({k: v for k, v in last.items() if isinstance(v, (int, float, str, list)) or v is None})
        self.record.progress = prog  # always current in memory; the file is written at most once a second
        if not force and now - self._last_beat < HEARTBEAT_S:
            return
        self._last_beat = now
        if self.is_main:
            write_record(self.paths.job_json, self.record)

    # --------------------------------------------------------------------------------- stop requests
    def request_stop(self, *_: Any) -> None:
        """SIGTERM/SIGINT: stop after this step. The stop request file makes the job show as ``stopping`` whoever
        sent the signal (``ncanvas jobs stop`` wrote it already)."""
        self._stop = True
        if not self.paths.stop_request.exists():
            self._stop_from_elsewhere = True  # not `ncanvas jobs stop/kill/rm`: under Slurm, Slurm ending this run
        if self.is_main and not self.paths.stop_request.exists():
            try:
                self.paths.stop_request.write_text(f"{time.time():.3f}\n")
            except OSError:
                pass  # a full disk: the job still stops; it shows as running until it has

    def request_requeue(self, *_: Any) -> None:
        """SIGUSR1 under Slurm (walltime warning, preemption): checkpoint like a stop, then run again."""
        self._requeue = True

    def continued(self, *_: Any) -> None:
        """SIGCONT after a pause: the rate behind the ETA restarts, so the paused time does not slow it down."""
        self._start_step = None

    def should_stop(self) -> bool:
        """True once SIGTERM/SIGINT (stop) or, under Slurm, SIGUSR1 (requeue) arrived: finish the step, save
        ``latest.pt``, return from training.

        Under DDP the ranks agree (all-reduce MAX of 0 none, 1 requeue, 2 stop), so every rank stops after the same
        step, and a stop wins over a requeue.
        """
        if self.world_size > 1 and self._dist_ready:
            import torch
            import torch.distributed as dist

            flag = torch.tensor([2.0 if self._stop else 1.0 if self._requeue else 0.0], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            self._stop, self._requeue = flag.item() == 2.0, flag.item() == 1.0
        return self._stop or self._requeue

    # --------------------------------------------------------------------------------- distributed
    def setup_distributed(self) -> None:
        """Join the torchrun process group (nccl on GPUs, gloo on the CPU); a no-op for one process."""
        if self.world_size <= 1 or self._dist_ready:
            return
        import torch.distributed as dist

        backend = "nccl" if self.device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend)
        self._dist_ready = True

    def wrap_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """``DistributedDataParallel(model)`` under torchrun, else the model itself."""
        if self.world_size <= 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def shard(self, indices: Any) -> Any:
        """This rank's share of a batch's indices (every rank sees the same global order)."""
        return indices[self.rank::self.world_size] if self.world_size > 1 else indices

    # --------------------------------------------------------------------------------- device and seeds
    @property
    def device(self) -> torch.device:
        if self._device is None:
            import torch

            if self.record.gpu != "cpu" and torch.cuda.is_available():
                local = int(os.environ.get("LOCAL_RANK", "0"))
                self._device = torch.device("cuda", local)
                torch.cuda.set_device(self._device)
            else:
                self._device = torch.device("cpu")
        return self._device

    def seed_everything(self, seed: int) -> None:
        import random

        import numpy as np
        import torch

        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    # --------------------------------------------------------------------------------- checkpoints
    def resume_checkpoint(self) -> dict[str, Any] | None:
        """``latest.pt`` when this attempt resumes (loaded once, weights_only), else None."""
        return self._resume_ckpt

    def _load_resume(self) -> None:
        if not self.resuming:
            return
        if not self.paths.latest.is_file():  # removed after `jobs resume` checked: not a silent restart at step 0
            raise NcanvasError(f"no {self.paths.latest.name} to resume from; `ncanvas jobs resume "
                               f"{self.record.id} --from-scratch` starts again from step 0")
        from core.checkpoint import load_checkpoint

        self._resume_ckpt = load_checkpoint(self.paths.latest, kind=self.kind)
        self._latest_step = self._resume_ckpt.get("step")

    def save(self, ckpt: dict[str, Any], *names: str) -> None:
        """Atomically write one checkpoint dict under ``ckpt_dir`` for each name; log a checkpoint event."""
        if not self.is_main:
            return
        from core.checkpoint import save_checkpoint

        self.paths.ckpt_dir.mkdir(parents=True, exist_ok=True)
        for name in names or ("latest.pt",):
            try:
                save_checkpoint(ckpt, self.paths.ckpt_dir / name)
            except Exception as e:
                why = describe_os_error(e, where=self.paths.ckpt_dir, kept=self.kept_checkpoint())
                if why is None:
                    raise
                raise NcanvasError(why) from e
            if name == "latest.pt":
                self._latest_step = ckpt.get("step")
        self.event("checkpoint", step=ckpt.get("step"), epoch=ckpt.get("epoch"), files=list(names))

    def kept_checkpoint(self) -> str:
        """What a failed write leaves to resume from: ``latest.pt from step S is kept`` (atomic writes never
        touch the old file)."""
        if not self.paths.latest.is_file():
            return "no latest.pt was written yet"
        at = f" from step {self._latest_step}" if self._latest_step is not None else ""
        return f"{self.paths.latest.name}{at} is kept"


# ===================================================================================== queue


def _wait_for_turn(rt: JobRuntime, ws: Workspace) -> list[FileLock]:
    """Block (state queued) until ``after`` finished and a GPU slot is free. Returns held slot locks."""
    rec = rt.record
    if rec.backend == "slurm":  # Slurm queued it already: the dependency (afterok) and the GPUs are Slurm's
        return []
    # DDP: rank 0 waits its turn, then writes a go file naming this torchrun launch; the other ranks wait for that
    # file instead of in init_process_group, whose rendezvous would time out (30 min) on a long queue
    go, launch = rt.paths.log_dir / ".ddp-go", str(os.getppid())
    if not rt.is_main:
        while not rt._stop:
            try:
                if go.read_text() == launch:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        return []
    announced = ""
    while True:
        if rt._stop:
            return []
        why = _dependency_wait(_dependency(ws, rec.after), rec.after) if rec.after else ""
        if not why:
            slots = _take_gpu_slots(ws, rec)
            if slots is not None:
                if rt.world_size > 1:
                    go.write_text(launch)
                return slots
            why = f"waiting for a free slot on GPU {rec.gpu} (max {rec.max_per_gpu} job(s) per GPU)"
        if why != announced:
            print(f"[ncanvas] queued: {why}", flush=True)
            # a resumed job waiting its turn still shows where it stopped (step, loss) beside why it waits
            rt.write_state(QUEUED, error=None, progress=dict(rec.progress, queued=why))
            announced = why
        time.sleep(1.0)


def _dependency(ws: Workspace, dep_id: str) -> Any:
    """The ``--after`` job's status; one clear error once it was removed (``jobs rm --force``)."""
    from jobs.supervisor import job_status  # light; avoids an import cycle at module load

    try:
        return job_status(ws, dep_id)
    except JobNotFound:
        raise NcanvasError(f"dependency {dep_id} was removed; not starting") from None


def _dependency_wait(dep: Any, dep_id: str) -> str:
    """Why to keep waiting for ``--after`` job ``dep`` ('' once it finished); raises once it ended otherwise.

    A dependency being launched (a resume, before its new process holds its lock) is starting, not ended."""
    if dep.starting:
        return f"waiting for {dep_id} (starting) to finish"
    if dep.state in (FAILED, KILLED):
        raise NcanvasError(f"dependency {dep_id} ended {dep.state}; not starting")
    return "" if dep.state == FINISHED else f"waiting for {dep_id} ({dep.state}) to finish"


def _take_gpu_slots(ws: Workspace, rec: JobRecord) -> list[FileLock] | None:
    if rec.gpu == "cpu" or rec.max_per_gpu <= 0:
        return []
    held: list[FileLock] = []
    for gpu in rec.gpu.split(","):
        name = re.sub(r"[^A-Za-z0-9-]", "_", gpu)  # an index, or a UUID (a MIG one may hold slashes)
        for k in range(rec.max_per_gpu):
            lock = FileLock(ws.logs / ".gpu" / f"gpu{name}-slot{k}.lock")
            if lock.acquire():
                held.append(lock)
                break
        else:
            for lock in held:
                lock.release()
            return None
    return held


# ===================================================================================== entry point


def _remove_stale_temp_files(paths: RunPaths) -> None:
    """Temp files of atomic writes that a SIGKILL interrupted (``.latest.pt.XXXX.tmp``): nobody else writes in
    this run while we hold its lock, so any left are garbage (for an LLM checkpoint, hundreds of MB each)."""
    for folder, pattern in ((paths.log_dir, ".job.json.*.tmp"), (paths.ckpt_dir, ".*.pt.*.tmp"),
                            (paths.ckpt_dir, ".training_curves.png.*.tmp")):  # only what a job writes itself
        for tmp in folder.glob(pattern) if folder.is_dir() else ():
            try:
                tmp.unlink()
            except OSError:
                pass


def failure_line(exc: BaseException, rt: JobRuntime | None = None) -> str:
    """The one line that says why a job failed. Expected errors (an :class:`NcanvasError`, a full disk, a
    read-only folder) are printed as that line; anything else is a bug, and its traceback goes to stdout.log."""
    where = rt.paths.ckpt_dir if rt is not None else None
    kept = rt.kept_checkpoint() if rt is not None else ""
    if isinstance(exc, NcanvasError):
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    elif (why := describe_os_error(exc, where=where, kept=kept)) is not None:
        line = why
    else:
        traceback.print_exc()
        sys.stderr.flush()
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip().rstrip(":")
    print(f"[ncanvas] error: {line}", flush=True)
    return line


RESERVE_BYTES = 64 << 10  # freed to record a failure on a full disk (job.json is written to a new temp file)


def _reserve(paths: RunPaths) -> Path:
    return paths.log_dir / ".disk-reserve"


def _hold_reserve(paths: RunPaths) -> None:
    """Take a little disk space (zeros, not a sparse file) that :func:`_record_failure` gives back, so that a job
    stopped by a full disk can still write its final state atomically."""
    try:
        with open(_reserve(paths), "wb") as f:
            f.write(b"\0" * RESERVE_BYTES)
    except OSError:
        _reserve(paths).unlink(missing_ok=True)  # no room even for that: the failure is then only in stdout.log


def diagnose_failure(exc: BaseException, rt: JobRuntime, line: str) -> dict[str, Any] | None:
    """The failure's cause (:mod:`jobs.triage`) from the exception and what the job knows, printed as a ``fix:``
    line under the error; None if triage itself fails (the error line is then all there is). Its modules are
    imported with this one: a job out of memory could not import them now."""
    try:
        ev = from_exception(exc, job_id=rt.record.id, kind=rt.kind, config=rt.record.config, code_root=code_root(),
                            ckpt_dir=rt.paths.ckpt_dir, latest_step=rt._latest_step)
        cause = diagnose(replace(ev, line=line))
    except Exception as e:  # noqa: BLE001 - triage must never hide the failure it explains
        print(f"[ncanvas] (could not diagnose the failure: {type(e).__name__}: {e})", flush=True)
        return None
    if rt.is_main:
        print(f"[ncanvas] cause: {cause.summary}\n[ncanvas] fix: {cause.fix}", flush=True)
    return cause.to_json()


def _record_failure(rt: JobRuntime, line: str, cause: dict[str, Any] | None = None) -> None:
    """The failed event and state; on a full disk these small writes may fail too, which must not hide ``line``
    behind a traceback (the job then shows as crashed, with this line as its last log line)."""
    if rt.is_main:
        _reserve(rt.paths).unlink(missing_ok=True)
    code = cause["code"] if cause else "error"
    for write in (lambda: rt.event("failed", step=rt.record.progress.get("step"), error=line, cause=code),
                  lambda: rt.write_state(FAILED, ended=time.time(), exit_code=1, error=line, cause=cause)):
        try:
            write()
        except OSError as e:
            print(f"[ncanvas] could not record the failure: {describe_os_error(e) or e}", flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="ncanvas job entry point (started by the supervisor)")
    p.add_argument("--run-dir", required=True, help="logs/<id> of the job")
    p.add_argument("--resume", action="store_true", help="continue from latest.pt")
    return p.parse_args(argv)


def _under_slurm() -> bool:
    """Started by an ncanvas Slurm batch script (not merely inside some Slurm allocation)."""
    return os.environ.get("NCANVAS_BACKEND") == "slurm"


def run_job(config_cls: type, train_fn: Callable[[JobRuntime, Any], object],
            argv: list[str] | None = None) -> NoReturn:
    """Run one attempt of a job in this process and exit with its status (0 finished/stopped, 1 failed)."""
    args = _parse(argv)
    faulthandler.enable()  # a segfault leaves "Fatal Python error" and the stack in stdout.log: triage reads it
    paths = RunPaths.from_log_dir(args.run_dir)
    rank = int(os.environ.get("RANK", "0"))
    lock = FileLock(paths.lock)
    if rank == 0 and not lock.acquire(timeout=10.0):
        print(f"[ncanvas] {paths.job_id} is already running (lock held); exiting", file=sys.stderr, flush=True)
        sys.exit(EXIT_ALREADY_RUNNING)
    if rank == 0:
        _remove_stale_temp_files(paths)
        _hold_reserve(paths)
    record = read_record(paths.job_json)
    cfg = build_config(config_cls, record.config)
    rt = JobRuntime(paths, record, cfg, resuming=args.resume)
    signal.signal(signal.SIGTERM, rt.request_stop)
    signal.signal(signal.SIGINT, rt.request_stop)
    signal.signal(signal.SIGCONT, rt.continued)
    if _under_slurm():
        signal.signal(signal.SIGUSR1, rt.request_requeue)
    ws = Workspace(paths.log_dir.parent.parent)
    code = _run(rt, ws, train_fn)
    if rt._dist_ready:
        import torch.distributed as dist

        dist.destroy_process_group()
    if rank == 0:
        _reserve(paths).unlink(missing_ok=True)
    try:
        rt.metrics.close()
    except OSError as e:  # the last rows could not be flushed (a full disk): the failure is recorded already
        print(f"[ncanvas] metrics.jsonl: {describe_os_error(e) or e}", flush=True)
    lock.release()
    sys.exit(code)


def _run(rt: JobRuntime, ws: Workspace, train_fn: Callable[[JobRuntime, Any], object]) -> int:
    pid = os.getpid()
    rt.write_state(rt.record.state, pid=pid, pgid=os.getpgid(pid), exit_code=None, error=None, cause=None)
    try:
        slots = _wait_for_turn(rt, ws)
        if rt._stop:
            rt.write_state(STOPPED, ended=time.time(), exit_code=0)
            return 0
        # running from here: joining DDP, importing torch and loading latest.pt are this attempt's work, not a queue
        # start facts (the cgroup's OOM-kill count now) let the supervisor tell an OOM kill from any other SIGKILL
        progress = {**{k: v for k, v in rt.record.progress.items() if k != "queued"}, **start_facts()}
        rt.write_state(RUNNING, started=time.time(), ended=None, cause=None, progress=progress)
        rt.setup_distributed()
        rt._load_resume()
        step = int(rt._resume_ckpt["step"]) if rt._resume_ckpt else 0
        rt.write_state(RUNNING, progress=dict(rt.record.progress, step=step))
        if rt._resume_ckpt is not None:
            rt.event("resumed", step=step, epoch=rt._resume_ckpt.get("epoch"), attempt=rt.record.attempts)
        else:
            rt.event("started", step=0, attempt=rt.record.attempts, pid=pid)
        if rt.is_main:
            print(f"[ncanvas] {rt.record.id} ({rt.kind}) {f'resumed at step {step}' if step else 'started'}"
                  f" on {rt.record.gpu}, pid {pid}", flush=True)
        train_fn(rt, rt.config)
        for s in slots:
            s.release()
    except BaseException as e:  # noqa: BLE001 - every failure must become a recorded state
        line = failure_line(e, rt)
        _record_failure(rt, line, diagnose_failure(e, rt, line))
        return 1
    final_step = rt.record.progress.get("step")
    if rt._stop and _under_slurm() and rt._stop_from_elsewhere:
        say = _ended_by_slurm(rt, final_step)
        if rt.is_main:
            print(f"[ncanvas] {say}", flush=True)
        return EXIT_STOPPED_SLURM  # never 75: whether this run comes back is Slurm's decision, not the script's
    if rt._requeue and not rt._stop:
        code, say = _requeue_or_stop(rt, final_step)
        if code == EXIT_REQUEUE:
            if rt.is_main:
                print(f"[ncanvas] {say}", flush=True)
            return code
    elif rt._stop:
        rt.event("stopped", step=final_step)
        rt.write_state(STOPPED, ended=time.time(), exit_code=0)
        say = f"stopped at step {final_step}; resume with: ncanvas jobs resume {rt.record.id}"
    else:
        rt.event("finished", step=final_step)
        rt.write_state(FINISHED, ended=time.time(), exit_code=0)
        say = f"finished at step {final_step}"
    if rt.is_main:  # one line, not one per DDP rank
        print(f"[ncanvas] {say}", flush=True)
    return EXIT_STOPPED_SLURM if _under_slurm() and (rt._stop or rt._requeue) else 0


def _ended_by_slurm(rt: JobRuntime, step: Any) -> str:
    """SIGTERM from Slurm itself (``latest.pt`` is saved): back to queued, for the run Slurm may start again."""
    why = f"requeued by Slurm (preemption or an outside requeue) at step {step}; resumes from latest.pt"
    rt.event("requeued", step=step, by="slurm")
    _back_to_queue(rt, why)
    if rt.is_main:
        rt.paths.stop_request.unlink(missing_ok=True)  # the run Slurm starts again is not stopping
    return f"saved latest.pt at step {step}: Slurm ended this run (SIGTERM: a preemption, a requeue, the time limit " \
           "or scancel); a requeued run resumes from it"


def _back_to_queue(rt: JobRuntime, why: str, **fields: Any) -> None:
    from jobs.supervisor import paused_between, read_pauses  # light; avoids an import cycle at module load

    rec, now = rt.record, time.time()
    ran = 0.0 if rec.started is None else max(0.0, now - rec.started - paused_between(
        read_pauses(rt.paths), rec.started, now))  # this run's training time: elapsed goes on from it
    rt.write_state(QUEUED, attempts=rec.attempts + 1, resume=True, pid=None, pgid=None, prior_s=rec.prior_s + ran,
                   started=None, progress=dict(rec.progress, queued=why, eta_s=None), **fields)


def _requeue_or_stop(rt: JobRuntime, step: Any) -> tuple[int, str]:
    """After a requeue request (``latest.pt`` is saved): back to queued for the next run, or, past the bound
    ``NCANVAS_MAX_REQUEUES``, stopped with the reason."""
    rec, limit = rt.record, int(os.environ.get("NCANVAS_MAX_REQUEUES", "0"))
    if rec.requeues >= limit:
        why = f"walltime warning at step {step}: already requeued {rec.requeues} time(s) (limit {limit})"
        rt.event("stopped", step=step, reason=why)
        rt.write_state(STOPPED, ended=time.time(), exit_code=0, error=why)
        return 0, f"stopped: {why}; resume with: ncanvas jobs resume {rec.id}"
    why = f"requeued after the walltime warning ({rec.requeues + 1}/{limit}); resumes from latest.pt"
    rt.event("requeued", step=step, requeues=rec.requeues + 1, by="ncanvas")
    _back_to_queue(rt, why, requeues=rec.requeues + 1)
    return EXIT_REQUEUE, f"saved latest.pt at step {step}; {why}"
