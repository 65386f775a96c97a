"""Why did a job die, and what to do now: failure causes decided from evidence by small rules. Light: no torch.

Evidence comes from where it can be seen: the job process describes its own exception (type, message, frames,
its config, GPU memory at the moment, free disk), and the supervisor describes a process that vanished without a
final state (the stop marker, the kernel's OOM-kill counter of the job's cgroup, the last heartbeat's memory, the
boot time, the log's last lines), as does the Slurm backend (Slurm's own state). Each rule takes the evidence and
returns a :class:`Cause` (one sentence, one fix, the evidence lines that show it) or nothing; the first that
answers wins, the last always does. The cause is stored in ``job.json`` with the final state.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

CODE_DIRS = ("core/", "jobs/", "tui/")


@dataclass(frozen=True)
class Frame:
    """One traceback frame: ``file`` relative to the code root where it is ncanvas's own."""

    file: str
    line: int
    func: str
    ours: bool = False


@dataclass
class Evidence:
    """Everything known about a job's end. Every field is optional: rules use what is there."""

    job_id: str = "ID"
    kind: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    exc_type: str | None = None  # the exception's class name (and its bases', for matching)
    exc_bases: tuple[str, ...] = ()
    message: str = ""
    line: str = ""  # the one line the job printed for its failure (e.g. "disk full: ... is kept")
    frames: tuple[Frame, ...] = ()
    gpu_mem: dict[str, float] = field(default_factory=dict)  # peak_gib, total_gib, free_gib of the job's GPU
    disk_free: dict[str, int] = field(default_factory=dict)  # path -> free bytes
    latest_step: int | None = None  # the step of the latest.pt that is kept
    latest_kept: bool = False  # a latest.pt is there (its step may be unknown)
    # a process that vanished without a final state (supervisor side)
    vanished: bool = False
    stop_requested: bool = False  # ``ncanvas jobs stop`` had asked it to stop
    oom_kills: int = 0  # the kernel's oom_kill count of the job's cgroup went up by this much
    rss_mb: float | None = None  # the last heartbeat's resident memory
    mem_limit_mb: float | None = None  # the cgroup's memory limit (or the machine's memory)
    rebooted_at: float | None = None  # the machine booted after the last heartbeat
    last_heartbeat: float | None = None
    log_tail: tuple[str, ...] = ()
    # Slurm
    slurm_state: str | None = None
    slurm_reason: str | None = None


@dataclass(frozen=True)
class Cause:
    """A decided cause: ``code`` (stable, for scripts), ``reason`` (a few words, for the jobs table),
    ``summary`` (one sentence), ``fix`` (what to do), ``evidence`` (the lines that show it), ``where`` (the
    traceback's place, ``file:line in func``)."""

    code: str
    reason: str
    summary: str
    fix: str
    evidence: tuple[str, ...] = ()
    where: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["evidence"] = list(self.evidence)
        return out


# ============================================================================================ helpers


def _is(ev: Evidence, *names: str) -> bool:
    return ev.exc_type in names or any(b in names for b in ev.exc_bases)


def _says(ev: Evidence, *needles: str) -> bool:
    text = ev.message + "\n" + "\n".join(ev.log_tail)
    return any(n.lower() in text.lower() for n in needles)


def where(frames: Sequence[Frame]) -> str | None:
    """The traceback's place that matters: the last frame in ncanvas's own code, else the last frame."""
    pick = [f for f in frames if f.ours] or list(frames)
    return f"{pick[-1].file}:{pick[-1].line} in {pick[-1].func}" if pick else None


def frames_from_traceback(tb: Any, code_root: str) -> tuple[Frame, ...]:
    """Frames of a traceback object, marking (and shortening) those inside ``code_root``'s packages."""
    import traceback

    root = code_root.rstrip("/") + "/"
    out = []
    for fs in traceback.extract_tb(tb):
        rel = fs.filename[len(root):] if fs.filename.startswith(root) else fs.filename
        out.append(Frame(rel, fs.lineno or 0, fs.name, rel.startswith(CODE_DIRS)))
    return tuple(out)


def _gib(x: float | None) -> str:
    return "?" if x is None else f"{x:.1f}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _kept(ev: Evidence) -> str:
    if ev.latest_step is not None:
        return f"latest.pt from step {ev.latest_step} is kept"
    return "latest.pt is kept" if ev.latest_kept else "no checkpoint yet"


# ============================================================================================ rules
Rule = Callable[[Evidence], "Cause | None"]


def diverged(ev: Evidence) -> Cause | None:
    if not _is(ev, "Diverged"):
        return None
    msg = _first_line(ev.message)
    fix = msg.split("Try: ", 1)[1] if "Try: " in msg else "lower --lr; clip gradients with --grad-clip 1.0"
    return Cause("diverged", "diverged (NaN/inf)", msg.split(" Try: ")[0], fix, (msg,), where(ev.frames))


def cuda_oom(ev: Evidence) -> Cause | None:
    if not (_is(ev, "OutOfMemoryError") or _says(ev, "CUDA out of memory")):
        return None
    cfg = ev.config
    bs, acc = int(cfg.get("batch_size") or 0), int(cfg.get("grad_accum") or 1)
    total = ev.gpu_mem.get("total_gib")
    if total is None and (m := re.search(r"total capacity of ([\d.]+) GiB", ev.message)):
        total = float(m.group(1))
    peak = ev.gpu_mem.get("peak_gib")
    used = f" ({_gib(peak)} of {_gib(total)} GiB)" if peak or total else ""
    if bs >= 2:
        fix = f"--batch-size {bs // 2} --grad-accum {acc * 2} (the same effective batch of {bs * acc})"
    else:
        fix = "a smaller model or a GPU with more memory"
    if not cfg.get("amp", True):
        fix += "; or mixed precision with --amp"
    summary = f"out of GPU memory at batch {bs}{used}" if bs else f"out of GPU memory{used}"
    return Cause("cuda_oom", "GPU out of memory", summary, fix, (_first_line(ev.message),), where(ev.frames))


def host_oom(ev: Evidence) -> Cause | None:
    raised = _is(ev, "MemoryError") or _says(ev, "DefaultCPUAllocator: can't allocate memory",
                                            "Cannot allocate memory")
    killed = ev.vanished and not ev.stop_requested and ev.oom_kills > 0
    if not (raised or killed):
        return None
    lines = []
    if ev.oom_kills:
        lines.append(f"the kernel's OOM killer ended {ev.oom_kills} process(es) of the job's cgroup")
    if ev.rss_mb is not None:
        limit = f" of a {ev.mem_limit_mb:.0f} MiB limit" if ev.mem_limit_mb else ""
        lines.append(f"{'last heartbeat' if ev.vanished else 'at the failure'}: {ev.rss_mb:.0f} MiB resident{limit}")
    if raised:
        lines.append(_first_line(ev.message))
    bs = int(ev.config.get("batch_size") or 0)
    fix = (f"--batch-size {bs // 2}" if bs >= 2 else "a smaller batch") + ", fewer jobs at once on this machine"
    if ev.kind == "artcnn":
        fix += ", or --stream (decode images per batch instead of holding them in memory)"
    asked = re.search(r"tried to allocate (\d+) bytes", ev.message)
    summary = ("killed by the kernel's OOM killer: out of host memory" if killed else "out of host memory" +
               (f" allocating {_bytes(int(asked.group(1)))}" if asked else "") + (f" at batch {bs}" if bs else ""))
    return Cause("host_oom", "host out of memory", summary, fix, tuple(lines), where(ev.frames))


def disk_full(ev: Evidence) -> Cause | None:
    if not (_says(ev, "No space left on device", "Errno 28", "disk full") or
            (_says(ev, "unexpected pos") and any(v < 64 << 20 for v in ev.disk_free.values()))):
        return None
    free = ", ".join(f"{_bytes(v)} free on {k}" for k, v in ev.disk_free.items()) or "the disk is full"
    summary = ev.line if ev.line.startswith("disk full: ") else f"disk full: {free}; {_kept(ev)}"
    return Cause("disk_full", "disk full", summary,
                 "free space (old runs: ncanvas jobs rm <old job>), then: {resume}",
                 (_first_line(ev.message),), where(ev.frames))


def data_missing(ev: Evidence) -> Cause | None:
    if not (_is(ev, "DataNotFound") or _says(ev, "data not found")):
        return None
    msg = _first_line(ev.message)
    offline = "NCANVAS_OFFLINE" in msg or "download failed" in msg
    reason = "data missing (offline)" if offline else "data missing"
    put = msg.split("data not found: ", 1)[-1]
    return Cause("data_missing", reason, msg, put[0].upper() + put[1:] if put else "pass --data-dir", (msg,),
                 where(ev.frames))


def no_cuda(ev: Evidence) -> Cause | None:
    if not _says(ev, "Found no NVIDIA driver", "Torch not compiled with CUDA", "no CUDA GPUs are available",
                 "CUDA driver initialization failed", "cudaGetDeviceCount"):
        return None
    return Cause("cuda_unavailable", "no CUDA", "CUDA was asked for but is not available on this machine",
                 "--gpu cpu; or check the driver with nvidia-smi", (_first_line(ev.message),), where(ev.frames))


def driver_mismatch(ev: Evidence) -> Cause | None:
    if not _says(ev, "driver version is insufficient", "driver on your system is too old",
                 "CUDA driver version is"):
        return None
    return Cause("driver_mismatch", "driver too old", "the NVIDIA driver is older than this torch build's CUDA",
                 "install a torch build for the driver's CUDA (pip install torch --index-url "
                 "https://download.pytorch.org/whl/cu118, say) or update the driver",
                 (_first_line(ev.message),), where(ev.frames))


def nccl(ev: Evidence) -> Cause | None:
    if not (_is(ev, "DistBackendError") or _says(ev, "NCCL error", "ncclUnhandled", "ncclSystemError",
                                                  "ProcessGroupNCCL")):
        return None
    return Cause("nccl", "NCCL error", "the GPUs' collective communication (NCCL) failed",
                 "run again with NCCL_DEBUG=INFO to see why; on one machine NCCL_P2P_DISABLE=1 often helps; "
                 "or train on one GPU (--gpus 1)", (_first_line(ev.message),), where(ev.frames))


def missing_package(ev: Evidence) -> Cause | None:
    if not _is(ev, "ModuleNotFoundError", "ImportError"):
        return None
    m = re.search(r"No module named '([\w.]+)'", ev.message)
    pkg = (m.group(1).split(".")[0] if m else "").replace("_", "-")
    fix = f"pip install {pkg} (in the environment the job runs in)" if pkg else "reinstall ncanvas: make install"
    return Cause("missing_package", "missing package", _first_line(ev.message), fix, (_first_line(ev.message),),
                 where(ev.frames))


def bad_value(ev: Evidence) -> Cause | None:
    option = re.match(r"\s*(--[a-z][a-z0-9-]+)\b", ev.message)  # the message names the option first
    if not (option and _is(ev, "NcanvasError", "ValueError", "CheckpointError")):
        return None
    msg = _first_line(ev.message)
    return Cause("bad_value", f"bad value for {option.group(1)}", msg,
                 f"start it again with a valid {option.group(1)} (ncanvas train {ev.kind} --help lists them)",
                 (msg,), where(ev.frames))


_SLURM = {
    "TIMEOUT": ("slurm_timeout", "time limit", "reached its Slurm time limit",
                "a longer --time, or keep --time and let ncanvas requeue it from latest.pt"),
    "PREEMPTED": ("slurm_preempted", "preempted", "preempted by Slurm for a job of higher priority",
                  "{resume} (or submit to a partition without preemption)"),
    "OUT_OF_MEMORY": ("slurm_oom", "out of memory (Slurm)", "killed by Slurm for exceeding its memory request",
                      "a larger --mem, or a smaller --batch-size"),
    "NODE_FAIL": ("slurm_node_fail", "node failure", "the compute node failed under the job",
                  "{resume} (Slurm avoids the failed node)"),
    "CANCELLED": ("slurm_cancelled", "cancelled", "cancelled in Slurm (scancel) outside ncanvas",
                  "{resume}"),
    "BOOT_FAIL": ("slurm_boot_fail", "node boot failure", "its compute node failed to boot",
                  "{resume} (Slurm avoids the failed node)"),
    "DEADLINE": ("slurm_deadline", "deadline passed", "its Slurm deadline (--deadline) passed",
                 "a later --deadline (--slurm-arg=--deadline=...), then: {resume}"),
}


def slurm(ev: Evidence) -> Cause | None:
    state = ((ev.slurm_state or "").split() or [""])[0].upper()
    if state not in _SLURM:
        return None
    code, reason, summary, fix = _SLURM[state]
    lines = tuple(x for x in (f"Slurm state {ev.slurm_state}", ev.slurm_reason and f"reason {ev.slurm_reason}") if x)
    return Cause(code, reason, f"{summary}; {_kept(ev)}", fix, lines)


def crashed(ev: Evidence) -> Cause | None:
    """A process that vanished without a final state and without the evidence of the rules above."""
    if not ev.vanished:
        return None
    fatal = next((ln for ln in ev.log_tail if "Fatal Python error" in ln), None)
    if fatal is not None:
        return Cause("segfault", "crashed (" + fatal.split(":", 1)[-1].strip().lower() + ")",
                     f"the Python interpreter crashed: {fatal.strip()}; {_kept(ev)}",
                     "{resume}; if it recurs at the same step, report it with the log (a native "
                     "library fault)", (fatal.strip(),))
    if ev.rebooted_at is not None:
        return Cause("reboot", "machine rebooted", f"the machine rebooted while the job ran; {_kept(ev)}",
                     "{resume}", ("boot time after the last heartbeat",))
    if ev.stop_requested:
        return Cause("killed_while_stopping", "killed while stopping",
                     f"the process ended while stopping, before it wrote its final state; {_kept(ev)}",
                     "{resume}")
    lines = (f"last heartbeat: {ev.rss_mb:.0f} MiB resident",) if ev.rss_mb is not None else ()
    if ev.slurm_state:  # a Slurm job whose batch script ended (or that Slurm forgot) without the trainer's last word
        return Cause("slurm_no_final_state", "ended without a final state",
                     f"the job ended without a final state (crashed, killed, out of memory, or its node cannot see "
                     f"the workspace); {_kept(ev)}", "see its log (ncanvas logs {id}), then: {resume}",
                     (f"Slurm state {ev.slurm_state}", *lines))
    return Cause("killed", "killed (SIGKILL?)",
                 f"the process was killed from outside ncanvas (kill -9, a scheduler or the OOM killer without "
                 f"cgroup evidence); {_kept(ev)}", "{resume}", lines)


def expected(ev: Evidence) -> Cause | None:
    """An error ncanvas raised on purpose (an NcanvasError): its message already says what is wrong."""
    if not _is(ev, "NcanvasError") or ev.vanished:
        return None
    msg = _first_line(ev.message) or ev.exc_type or "error"
    return Cause("job_error", "error: " + (msg if len(msg) <= 40 else msg[:39] + "…"), msg,
                 "correct what the message says, then: {resume}", (msg,), where(ev.frames))


def error(ev: Evidence) -> Cause:
    """Anything else: the exception in one line and the place in ncanvas's code (or the user's data) it came from."""
    msg = _first_line(ev.message)
    line = f"{ev.exc_type}: {msg}" if ev.exc_type else (msg or "the job failed without an error message")
    place = where(ev.frames)
    fix = "see the traceback in the log: ncanvas logs {id}" + (f" (raised at {place})" if place else "")
    return Cause("error", ev.exc_type or "error", line, fix, (line,), place)


RULES: tuple[Rule, ...] = (slurm, diverged, cuda_oom, host_oom, disk_full, data_missing, no_cuda, driver_mismatch,
                           nccl, missing_package, bad_value, crashed, expected)


def diagnose(ev: Evidence) -> Cause:
    """The first rule's answer, else :func:`error`; ``{resume}`` and ``{id}`` in a fix name this job."""
    cause = next((c for c in (rule(ev) for rule in RULES) if c is not None), None) or error(ev)
    fix = cause.fix.replace("{resume}", f"ncanvas jobs resume {ev.job_id}").replace("{id}", ev.job_id)
    return replace(cause, fix=fix)
