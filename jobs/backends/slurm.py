"""The Slurm backend: sbatch to submit, squeue to see, scancel to signal and cancel, scontrol to requeue. No torch.

A job is one batch script (``logs/<id>/sbatch.sh``, see :mod:`jobs.backends.slurm_opts`) that runs the same
``python -m jobs.<kind> --run-dir ...`` as a local job on a compute node, into the same run folder: the workspace
must be on a filesystem the nodes share. What each verb does in Slurm terms:

- pause / cont: ``scancel --signal=STOP|CONT`` to the job's steps (Slurm shows the job STOPPED); the allocation
  stays held, and the time limit keeps running;
- stop: ``scancel --signal=TERM`` to the steps: the trainer finishes its step, saves ``latest.pt``, exits; a job
  still pending is cancelled; a second stop kills;
- kill: ``scancel`` (Slurm's SIGTERM, KillWait, SIGKILL to every step and the batch script);
- resume: a new submission from ``latest.pt`` (the curve continues); pending dependents are pointed at it;
- ``--after``: ``--dependency=afterok:<Slurm job id>``; rm of a live job cancels it first.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import NcanvasError, NoCheckpointToResume
from core.logtext import last_lines
from core.paths import RunPaths, Workspace
from core.runrec import (
    FAILED,
    FINISHED,
    KILLED,
    LIVE_STATES,
    PAUSED,
    QUEUED,
    RUNNING,
    STOPPED,
    STOPPING,
    TERMINAL_STATES,
    JobRecord,
    list_jobs,
    load_job,
    read_record,
    write_record,
)
from jobs.backends.slurm_opts import (
    LOCAL_FS,
    NETWORK_FS,
    ScriptPlan,
    SlurmOptions,
    asks_for_gpus,
    render_script,
    resolve,
    toml_defaults,
    validate,
)
from jobs.backends.slurm_state import ACTIVE, NO_ANSWER, PENDING, Seen, Verdict, decide, summary
from jobs.locks import FileLock, exclusive

CACHE_TTL_S = 1.0  # squeue answers reused this long: the dashboard asks about every job each second
CMD_TIMEOUT_S = 30.0
MISSING = ("{cmd} not found: Slurm's commands are not on this machine's PATH (run ncanvas on a login node of the "
           "cluster, `module load slurm`, or install the Slurm client)")
SQUEUE_FORMAT = "%i|%T|%r|%N|%S"


# ===================================================================================== Slurm's commands


def command(argv: list[str], timeout: float = CMD_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run a Slurm command; a missing one or a hung controller is one clear :class:`NcanvasError`."""
    exe = shutil.which(argv[0])
    if exe is None:
        raise NcanvasError(MISSING.format(cmd=argv[0]))
    try:
        return subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise NcanvasError(f"{argv[0]} did not answer within {timeout:.0f}s (is slurmctld up?)") from None


def _checked(argv: list[str]) -> str:
    out = command(argv)
    if out.returncode != 0:
        msg = (out.stderr.strip() or out.stdout.strip() or f"exit status {out.returncode}").splitlines()[-1]
        raise NcanvasError(f"{argv[0]}: {msg}")
    return out.stdout


_cache: dict[str, tuple[float, Seen | None]] = {}
_cache_lock = threading.Lock()


def _parse_start(text: str) -> float | None:
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:  # N/A, Unknown
        return None


def query(job_ids: list[str], fresh: bool = False) -> dict[str, Seen | None] | str:
    """``{job id: Seen, or None when Slurm does not know it}`` from one ``squeue``, or ``NO_ANSWER``."""
    now = time.monotonic()
    with _cache_lock:
        known = {j: _cache[j][1] for j in job_ids if j in _cache and not fresh and now - _cache[j][0] < CACHE_TTL_S}
    ask = [j for j in job_ids if j not in known]
    if not ask:
        return known
    try:
        out = command(["squeue", "-h", "-t", "all", "-j", ",".join(ask), "-o", SQUEUE_FORMAT])
    except NcanvasError:
        return NO_ANSWER
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        return NO_ANSWER
    got: dict[str, Seen | None] = dict.fromkeys(ask)
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        parts = line.strip().split("|")
        if len(parts) == 5 and parts[0] in got:
            jid, state, reason, nodes, start = parts
            state = state.split()[0].rstrip("+")  # "CANCELLED by 0" in some versions
            got[jid] = Seen(jid, state, reason, "" if nodes in ("(null)", "") else nodes, _parse_start(start))
    with _cache_lock:
        for jid, seen in got.items():
            _cache[jid] = (time.monotonic(), seen)
    return {**known, **got}


def seen_of(rec: JobRecord, fresh: bool = False) -> Seen | str | None:
    jid = rec.slurm.get("job_id")
    if not jid:
        return None
    answer = query([str(jid)], fresh=fresh)
    return answer if isinstance(answer, str) else answer.get(str(jid))


def exit_code(job_id: str) -> str | None:
    """``ExitCode`` of ``scontrol show job`` (``75:0``: status 75, no signal), while Slurm remembers the job."""
    try:
        out = command(["scontrol", "show", "job", "-o", job_id])
    except NcanvasError:
        return None
    for token in out.stdout.split():
        if token.startswith("ExitCode="):
            return token.split("=", 1)[1]
    return None


# ===================================================================================== shared filesystem


def _fs_type(path: Path) -> str | None:
    """The filesystem type of ``path`` (its longest mount point in /proc/mounts), None where unknown."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    real = str(path.resolve())
    best: tuple[str, str | None] = ("", None)
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3:
            point = parts[1].replace("\\040", " ")
            if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[0]):
                best = (point, parts[2])
    return best[1]


def shared_fs_check(root: Path, partition: str | None) -> tuple[bool | None, str]:
    """Whether the partition's nodes can see the workspace ``root``: True (checked), False (evidently not),
    None (cannot be checked here), with the sentence that says which and why."""
    import socket

    here = socket.gethostname().split(".")[0]
    try:
        out = command(["sinfo", "-h", "-N", "-o", "%N", *(["-p", partition] if partition else [])], timeout=15)
        nodes = {n.strip() for n in out.stdout.split() if n.strip()} if out.returncode == 0 else None
    except NcanvasError:
        nodes = None
    where = f"partition {partition}" if partition else "the default partition"
    if nodes == {here}:
        return True, f"{where} runs on this machine only: the workspace needs no sharing"
    fs = _fs_type(root)
    if fs in NETWORK_FS:
        return True, f"workspace {root} is on {fs}, a network filesystem: taken as shared with the nodes"
    if fs in LOCAL_FS and nodes:
        return False, (f"workspace {root} is on {fs}, a filesystem of this machine only, and {where} runs on other "
                       f"nodes ({', '.join(sorted(nodes)[:4])}{', ...' if len(nodes) > 4 else ''}): the job could not "
                       "see it. Use a workspace on a shared filesystem (--home or NCANVAS_HOME), or set "
                       "check_shared_fs = false under [slurm] in ncanvas.toml if it is shared after all")
    return None, (f"cannot check that workspace {root} ({fs or 'unknown filesystem'}) is shared with the nodes of "
                  f"{where}; if it is not, the job fails at its start")


# ===================================================================================== the backend


def _stop_marker(run: RunPaths) -> Path:
    return run.stop_request  # the same file as a local stop (jobs.supervisor._stop_marker)


def _control(run: RunPaths) -> Path:
    return run.log_dir / "control.lock"


class SlurmBackend:
    """:class:`jobs.backends.Backend` over Slurm's commands."""

    name = "slurm"

    # --------------------------------------------------------------------------------- status
    def prefetch(self, recs: list[JobRecord]) -> None:
        ids = [str(r.slurm["job_id"]) for r in recs if r.backend == self.name and r.slurm.get("job_id")]
        if ids:
            query(ids)

    def status(self, ws: Workspace, rec: JobRecord, fresh: bool = False) -> Any:
        from jobs.supervisor import JobStatus, _health, read_pauses

        run = ws.run(rec.id)
        seen = seen_of(rec, fresh)
        tail = ""
        ended = seen is None or (isinstance(seen, Seen) and not seen.active)
        if ended and rec.state in LIVE_STATES:  # only an unexplained ending needs the log
            tail = " | ".join(ln.strip() for ln in last_lines(run.stdout, 5) if ln.strip())
        v = decide(rec, seen, stop_requested=_stop_marker(run).exists(), log_tail=tail,
                   latest_kept=ended and run.latest.is_file())
        if v.settle is not None and (seen is None or isinstance(seen, Seen)):
            rec = self._settle(run, rec, seen, v)
        live = summary(seen) or ({"job_id": rec.slurm.get("job_id"), "state": rec.slurm.get("state"), "reason": None,
                                  "nodes": rec.slurm.get("nodes")} if rec.slurm.get("job_id") else None)
        cause = v.cause if v.state in (FAILED, KILLED) else None
        return JobStatus(rec, v.state, v.alive, reason=v.reason, slurm=live, pauses=read_pauses(run), cause=cause,
                         health=_health(rec, v.state) if v.alive else ())

    def _settle(self, run: RunPaths, rec: JobRecord, seen: Seen | None, v: Verdict) -> JobRecord:
        """Write an ending only Slurm knew into job.json (once; skipped while another command holds the job)."""
        lock = FileLock(_control(run))
        if not lock.acquire(timeout=0.0):
            return rec
        try:
            now = read_record(run.job_json)
            if now.slurm.get("job_id") != rec.slurm.get("job_id"):
                return now  # resubmitted meanwhile
            state, error, cause = v.settle  # type: ignore[misc]
            if isinstance(seen, Seen):
                code = exit_code(seen.job_id)
                if code and state == FAILED and code != "0:0" and "exit code" not in (error or ""):
                    error = f"{error} (exit code {code})"
                now.slurm.update(state=seen.state, nodes=seen.nodes or now.slurm.get("nodes"))
            now.state, now.error, now.cause = state, error, cause
            now.ended = now.ended or time.time()
            write_record(run.job_json, now)
            return now
        finally:
            lock.release()

    def _fresh(self, ws: Workspace, job_id: str) -> Any:
        return self.status(ws, load_job(ws, job_id), fresh=True)

    def _wait(self, ws: Workspace, job_id: str, until: Any, timeout: float) -> Any:
        st = self._fresh(ws, job_id)
        deadline = time.monotonic() + timeout
        while not until(st) and time.monotonic() < deadline:
            time.sleep(0.25)
            st = self._fresh(ws, job_id)
        return st

    def _trainer_up(self, ws: Workspace, job_id: str, verb: str, wait: float = 30.0) -> Any:
        """A running job whose trainer has installed its signal handlers (it records its pid then): a signal
        before that would kill the interpreter instead of being handled."""
        st = self._fresh(ws, job_id)
        if st.alive and st.slurm and st.slurm.get("state") in PENDING:
            raise NcanvasError(f"{job_id} is queued in Slurm ({st.reason}); nothing to {verb} yet")
        st = self._wait(ws, job_id, lambda s: not s.alive or s.record.pid or s.state not in (QUEUED, RUNNING), wait)
        if not st.alive or st.state not in LIVE_STATES:
            raise NcanvasError(f"{job_id} is {st.state}; nothing to {verb}")
        if not st.record.pid and st.state in (QUEUED, RUNNING):
            raise NcanvasError(f"{job_id} is still starting; try to {verb} it again in a moment")
        return st

    # --------------------------------------------------------------------------------- submit / resume
    def options(self, ws: Workspace, given: dict[str, Any]) -> SlurmOptions:
        return resolve(toml_defaults(ws), given)

    def submit(self, ws: Workspace, kind: str, cfg: Any, *, gpu: str = "auto", gpus: int = 1,
               after: str | None = None, job_id: str | None = None, options: dict[str, Any] | None = None,
               **_: Any) -> JobRecord:
        """Check everything, then create the run folder, write sbatch.sh and job.json, and submit (held until the
        record holds the Slurm job id). A refusal, sbatch's included, leaves nothing behind."""
        from jobs.config import to_dict
        from jobs.kinds import get_kind
        from jobs.supervisor import _claim_run_dir, _code_version, _creation_error, _discard

        spec = get_kind(kind)
        opts = self.options(ws, options or {})
        per_node, use_gpu = self._layout(kind, spec, opts, gpu, gpus)
        if shutil.which("sbatch") is None:
            raise NcanvasError(MISSING.format(cmd="sbatch") + "; nothing was created")
        dependency = self._dependency(ws, after)
        ok, fs_note = shared_fs_check(ws.root, opts.partition)
        if ok is False and opts.check_shared_fs:
            raise NcanvasError(fs_note)
        try:
            ws.ensure()
            run, made_ckpt_dir = _claim_run_dir(ws, kind, job_id)
        except OSError as e:
            raise _creation_error(ws, e, f"job {job_id or kind} was not created") from None
        rec = JobRecord(id=run.job_id, kind=kind, config=to_dict(cfg), code=_code_version(),
                        gpu="slurm" if use_gpu else "cpu", nproc=opts.nodes * per_node, after=after, max_per_gpu=0,
                        attempts=1, backend=self.name,
                        slurm={"job_id": None, "options": opts.to_json(), "history": [], "shared_fs": fs_note,
                               "script": str(run.log_dir / "sbatch.sh")})
        try:
            self._submit(run, rec, opts, per_node, use_gpu, dependency, resume=False)
        except BaseException as e:
            if rec.slurm.get("job_id"):  # submitted, held, then something failed: the held job goes too
                command(["scancel", str(rec.slurm["job_id"])])
            _discard(run, made_ckpt_dir)  # nothing half-made stays: `train --name X` works again at once
            if isinstance(e, OSError):
                raise _creation_error(ws, e, f"job {run.job_id} was not submitted") from None
            raise
        return rec

    def _layout(self, kind: str, spec: Any, opts: SlurmOptions, gpu: str, gpus: int) -> tuple[int, bool]:
        """(processes per node, GPUs asked for): one process per GPU, or ``--gpus`` gloo ranks with ``--gpu cpu``."""
        if gpu not in ("auto", "cpu"):
            raise NcanvasError(f"--gpu {gpu}: Slurm picks the GPUs; ask for them with --gpus-per-node N")
        if not spec.uses_gpu and asks_for_gpus(opts):
            raise NcanvasError(f"{kind} runs on the CPU; --gpus-per-node must be 0")
        if gpu == "cpu" and asks_for_gpus(opts):
            raise NcanvasError("--gpu cpu with --gpus-per-node: choose one")
        per_node = opts.gpus_per_node or gpus
        if opts.gpus_per_node and gpus not in (1, opts.gpus_per_node):
            raise NcanvasError(f"--gpus {gpus} with --gpus-per-node {opts.gpus_per_node}: under Slurm each node runs "
                               "one process per GPU; leave --gpus out")
        if opts.nodes * per_node > 1 and not spec.ddp:
            raise NcanvasError(f"{kind} does not train data-parallel; --nodes and --gpus-per-node must be 1")
        return per_node, spec.uses_gpu and gpu != "cpu" and asks_for_gpus(opts)

    def _dependency(self, ws: Workspace, after: str | None) -> str | None:
        """``afterok:<id>`` for a live Slurm dependency, None for a finished one; anything else is refused."""
        if after is None:
            return None
        dep = load_job(ws, after)
        if dep.backend != self.name:
            raise NcanvasError(f"--after {after}: it runs on the {dep.backend} backend; a Slurm job can wait only for "
                               "another Slurm job (Slurm's afterok)")
        st = self.status(ws, dep, fresh=True)
        if st.state == FINISHED:
            return None
        if not st.alive and not st.starting:
            raise NcanvasError(f"--after {after}: it ended {st.state}; resume it first")
        return f"afterok:{dep.slurm['job_id']}"

    def _submit(self, run: RunPaths, rec: JobRecord, opts: SlurmOptions, per_node: int, use_gpu: bool,
                dependency: str | None, resume: bool, while_held: Callable[[], None] | None = None) -> None:
        """Write sbatch.sh and job.json, ``sbatch --hold``, record the Slurm job id, run ``while_held`` (work that
        must happen only once the submission is sure and before the job can start), ``scontrol release``."""
        from jobs.kinds import get_kind
        from jobs.supervisor import CODE_ROOT

        plan = ScriptPlan(job_id=rec.id, kind=rec.kind, module=get_kind(rec.kind).module, log_dir=run.log_dir,
                          code_root=CODE_ROOT, python=opts.python or sys.executable, per_node=per_node, gpu=use_gpu,
                          resume=resume)
        script = run.log_dir / "sbatch.sh"
        script.write_text(render_script(opts, plan), encoding="utf-8")
        script.chmod(0o755)
        rec.argv = ["sbatch", str(script)]
        rec.progress["launched"] = round(time.time(), 3)
        write_record(run.job_json, rec)
        # held until job.json names it: a job that started at once would race our write of its id
        argv = ["sbatch", "--parsable", "--hold", *([f"--dependency={dependency}"] if dependency else []), str(script)]
        jid = _checked(argv).strip().split(";")[0]
        if not jid.isdigit():
            raise NcanvasError(f"sbatch answered {jid!r}, not a job id")
        rec.slurm["job_id"] = jid
        rec.slurm["submitted"] = round(time.time(), 3)
        write_record(run.job_json, rec)
        if while_held is not None:
            while_held()
        _checked(["scontrol", "release", jid])

    def resume(self, ws: Workspace, job_id: str, from_scratch: bool = False) -> str:
        """A new submission of the same job from ``latest.pt``; pending dependents now wait for it. Without a
        ``latest.pt``, as locally: a job that logged steps raises :class:`NoCheckpointToResume` unless
        ``from_scratch`` (the earlier attempt's rows are archived first); one that never did starts from scratch."""
        from jobs.supervisor import _archive_attempt, _creation_error, _end_pause, _has_metric_rows

        run = ws.run(job_id)
        load_job(ws, job_id)
        with exclusive(_control(run)):
            # a job that wrote its final state may still be ending in Slurm for a moment (its batch script)
            st = self._wait(ws, job_id, lambda s: not (s.alive and s.state in TERMINAL_STATES), 15.0)
            if st.alive or st.starting:
                raise NcanvasError(f"{job_id} is {st.state} in Slurm; nothing to resume")
            if st.state == FINISHED:
                raise NcanvasError(f"{job_id} is finished; nothing to resume")
            rec = st.record
            self._check_record(rec)
            fresh = from_scratch or not run.latest.is_file()
            if fresh and not from_scratch and _has_metric_rows(run):
                raise NoCheckpointToResume(job_id)
            before = copy.deepcopy(rec)
            opts = SlurmOptions(**rec.slurm.get("options", {}))
            old = rec.slurm.get("job_id")
            rec.slurm["history"] = [*rec.slurm.get("history", []), *([old] if old else [])]
            rec.slurm.update(job_id=None, state=None, nodes=None)
            rec.prior_s = 0.0 if from_scratch else (st.elapsed_s or 0.0)  # this attempt's clock starts at 0
            rec.state, rec.attempts, rec.resume = QUEUED, rec.attempts + 1, not fresh
            rec.started = rec.ended = rec.exit_code = rec.error = rec.cause = rec.pid = rec.pgid = None
            rec.progress.pop("eta_s", None)
            rec.progress.pop("queued", None)
            if from_scratch:
                rec.progress = {}
            archived: list[str] = []

            def while_held() -> None:  # the submission is sure: only now move the old attempt aside
                archived.extend(_archive_attempt(run, before.attempts) if from_scratch else [])
                _end_pause(run, at=before.ended)

            per_node = max(1, rec.nproc // max(1, opts.nodes))
            try:
                self._submit(run, rec, opts, per_node, rec.gpu != "cpu", None, resume=not fresh, while_held=while_held)
            except BaseException as e:  # nothing changes: the job stays as it was, resumable again
                if rec.slurm.get("job_id"):
                    command(["scancel", str(rec.slurm["job_id"])])
                write_record(run.job_json, before)
                if isinstance(e, OSError):
                    raise _creation_error(ws, e, f"{job_id} was not resumed") from None
                raise
            _stop_marker(run).unlink(missing_ok=True)  # kept until here: it tells a stop from Slurm's cancel
        moved = self._repoint_dependents(ws, job_id, str(rec.slurm["job_id"]))
        if from_scratch:
            kept = f"; the earlier attempt is kept as {' and '.join(archived)}" if archived else ""
            head = f"restarted {job_id} from scratch{kept}"
        else:
            head = f"resumed {job_id} from " + ("latest.pt" if not fresh else "scratch (it had not logged a step yet)")
        return f"{head} as Slurm job {rec.slurm['job_id']}" + (f"; {', '.join(moved)} now wait for it" if moved else "")

    @staticmethod
    def _check_record(rec: JobRecord) -> None:
        """A record read back before a resubmission (job.json may have been edited by hand): kind, config, options."""
        from jobs.config import build_config
        from jobs.kinds import get_kind, kind_config

        try:
            get_kind(rec.kind)
            build_config(kind_config(rec.kind), rec.config)
            validate(SlurmOptions(**rec.slurm.get("options", {})))
            if not isinstance(rec.nproc, int) or rec.nproc < 1:
                raise NcanvasError(f"nproc must be at least 1; got {rec.nproc!r}")
        except TypeError as e:
            raise NcanvasError(f"{rec.id}: job.json: slurm options: {e}") from None
        except NcanvasError as e:
            raise NcanvasError(f"{rec.id}: job.json: {e}") from None

    def _repoint_dependents(self, ws: Workspace, job_id: str, new: str) -> list[str]:
        moved = []
        for r in list_jobs(ws):
            if r.backend == self.name and r.after == job_id and r.slurm.get("job_id"):
                seen = seen_of(r, fresh=True)
                if isinstance(seen, Seen) and seen.state in PENDING:
                    out = command(["scontrol", "update", f"JobId={r.slurm['job_id']}", f"Dependency=afterok:{new}"])
                    if out.returncode == 0:
                        moved.append(r.id)
        return moved

    # --------------------------------------------------------------------------------- signals
    def _signal(self, rec: JobRecord, sig: str) -> None:
        _checked(["scancel", f"--signal={sig}", str(rec.slurm["job_id"])])

    def pause(self, ws: Workspace, job_id: str) -> str:
        st = self._trainer_up(ws, job_id, "pause")
        if st.state == PAUSED:
            raise NcanvasError(f"{job_id} is already paused")
        if st.state != RUNNING:
            raise NcanvasError(f"{job_id} is {st.state}; nothing to pause" if st.state != STOPPING else
                               f"{job_id} is stopping; pausing it now would stall its checkpoint (latest.pt)")
        from jobs.supervisor import _paused_since

        self._signal(st.record, "STOP")
        after = self._wait(ws, job_id, lambda s: s.state == PAUSED or not s.alive, 5.0)
        _paused_since(ws.run(job_id)).write_text(f"{time.time():.3f}\n")  # paused time is not training time
        where = f" on {after.slurm['nodes']}" if after.slurm and after.slurm.get("nodes") else ""
        return (f"paused {job_id} (Slurm job {st.record.slurm['job_id']}{where}); its allocation stays held: the "
                "CPUs/GPUs stay reserved for it and its time limit keeps running")

    def cont(self, ws: Workspace, job_id: str) -> str:
        st = self._fresh(ws, job_id)
        if not st.alive or st.state != PAUSED:
            raise NcanvasError(f"{job_id} is {st.state}, not paused")
        from jobs.supervisor import _end_pause

        self._signal(st.record, "CONT")
        _end_pause(ws.run(job_id))
        self._wait(ws, job_id, lambda s: s.state != PAUSED, 5.0)
        return f"continued {job_id}"

    def stop(self, ws: Workspace, job_id: str, wait: bool = False, timeout: float = 60.0) -> str:
        from jobs.supervisor import _end_pause

        st = self._fresh(ws, job_id)
        if not (st.alive or st.starting) or st.state not in LIVE_STATES:
            raise NcanvasError(f"{job_id} is {st.state}; nothing to stop")
        if st.state == STOPPING:
            return self.kill(ws, job_id) + " (second stop)"
        run = ws.run(job_id)
        if st.slurm and st.slurm.get("state") in PENDING or st.starting:
            self.cancel(ws, st.record)  # not started: nothing to checkpoint
            with exclusive(_control(run)):
                rec = read_record(run.job_json)
                rec.state, rec.ended, rec.error = STOPPED, time.time(), None
                rec.progress.pop("queued", None)
                write_record(run.job_json, rec)
            _stop_marker(run).write_text(f"{time.time():.3f}\n")
            return f"stopped {job_id} (it was still queued in Slurm: cancelled before it started)"
        st = self._trainer_up(ws, job_id, "stop")
        _stop_marker(run).write_text(f"{time.time():.3f}\n")
        self._signal(st.record, "TERM")
        if st.state == PAUSED:
            self._signal(st.record, "CONT")  # a stopped process cannot take SIGTERM until continued
        _end_pause(run)
        if not wait:
            return f"stopping {job_id} (it saves latest.pt, then exits; Slurm job {st.record.slurm['job_id']})"
        st = self._wait(ws, job_id, lambda s: not s.alive, timeout)
        if not st.alive:
            return f"stopped {job_id}"
        return self.kill(ws, job_id) + f" (no exit within {timeout:.0f}s of stop)"

    def kill(self, ws: Workspace, job_id: str, grace: float = 5.0) -> str:
        run = ws.run(job_id)
        st = self._fresh(ws, job_id)
        if not (st.alive or st.starting):
            raise NcanvasError(f"{job_id} is {st.state}; nothing to kill")
        self.cancel(ws, st.record, grace)
        with exclusive(_control(run)):
            rec = read_record(run.job_json)
            rec.state, rec.ended = KILLED, time.time()
            rec.error = "killed by user (scancel)"
            write_record(run.job_json, rec)
        return f"killed {job_id} (Slurm job {st.record.slurm.get('job_id')} cancelled)"

    def cancel(self, ws: Workspace, rec: JobRecord, grace: float = 5.0) -> None:
        """``scancel``, then wait until Slurm no longer runs it (after KillWait, a SIGKILL to every step)."""
        from jobs.supervisor import _end_pause

        _end_pause(ws.run(rec.id))
        if not rec.slurm.get("job_id"):  # being submitted: wait for its id (bounded), then cancel that
            rec = self._wait(ws, rec.id, lambda s: s.record.slurm.get("job_id") or not s.starting, 15.0).record
            if not rec.slurm.get("job_id"):
                return
        jid = str(rec.slurm["job_id"])
        # ncanvas asked for this end: the trainer takes the SIGTERM as a stop, not as Slurm ending its run (requeue)
        _stop_marker(ws.run(rec.id)).write_text(f"{time.time():.3f}\n")
        _checked(["scancel", jid])

        def gone(s: Any) -> bool:
            return not s.slurm or s.slurm.get("state") not in ACTIVE | PENDING

        st = self._wait(ws, rec.id, gone, max(grace, 5.0) + 60.0)
        if not gone(st):
            _checked(["scancel", "--full", "--signal=KILL", jid])
            self._wait(ws, rec.id, gone, 15.0)


SLURM = SlurmBackend()


def job_ids_in_squeue() -> set[str]:
    """Job ids squeue lists by default (pending, running, completing): for tests and the bench."""
    out = command(["squeue", "-h", "-o", "%i"])
    return {ln.strip() for ln in out.stdout.splitlines() if ln.strip()}

