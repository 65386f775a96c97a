"""Slurm submission options and the batch script they make. Pure: no subprocess, no torch.

Options come from ``ncanvas train KIND --backend slurm --partition ...`` over the ``[slurm]`` table of the
workspace's ``ncanvas.toml`` (defaults for a lab's cluster), and are checked before anything is created. The batch
script (``logs/<id>/sbatch.sh``) is written to be read: every ``#SBATCH`` line says what it is for, and the body runs
the same ``python -m jobs.<kind> --run-dir ...`` as a local job, so the run folder, curves and panes are the same.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.errors import NcanvasError
from core.paths import MARKER, Workspace

WARN_BEFORE_S = 120  # SIGUSR1 this long before the time limit: checkpoint and requeue (Slurm may be ~60 s early)
MAX_REQUEUES = 10  # walltime requeues of one submission before the warning becomes an ordinary stop
MASTER_PORT_BASE = 20000  # DDP rendezvous port: BASE + job id % 20000, so two jobs on one node rarely collide

# options ncanvas sets itself: passing them through --slurm-arg would break the run folder, the verbs or the requeue
_OWNED = {
    "--output": "the log goes to logs/<id>/stdout.log", "-o": "the log goes to logs/<id>/stdout.log",
    "--error": "stderr goes to stdout.log", "-e": "stderr goes to stdout.log",
    "--open-mode": "a requeued run appends to stdout.log", "--chdir": "the job runs in logs/<id>",
    "-D": "the job runs in logs/<id>", "--signal": "set warn_before under [slurm] in ncanvas.toml",
    "--requeue": "always on", "--no-requeue": "the walltime warning requeues the job",
    "--dependency": "use --after ID", "-d": "use --after ID", "--array": "one ncanvas job is one Slurm job",
    "-a": "one ncanvas job is one Slurm job", "--wrap": "ncanvas writes the script", "--parsable": "ncanvas reads it",
    "--hold": "ncanvas holds the job while it records its id", "-H": "ncanvas holds the job while it records its id",
    "--job-name": "the name is ncanvas:<id>", "-J": "the name is ncanvas:<id>",
    "--nodes": "use --nodes", "-N": "use --nodes", "--ntasks": "one task per GPU is derived from --gpus-per-node",
    "-n": "one task per GPU is derived from --gpus-per-node", "--ntasks-per-node": "derived from --gpus-per-node",
    "--time": "use --time", "-t": "use --time", "--partition": "use --partition", "-p": "use --partition",
    "--gpus-per-node": "use --gpus-per-node", "--cpus-per-task": "use --cpus-per-task", "-c": "use --cpus-per-task",
    "--mem": "use --mem", "--account": "use --account", "-A": "use --account", "--qos": "use --qos", "-q": "use --qos",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.,:@+-]{1,128}$")  # partition (or a comma list), account, qos
_MEM_RE = re.compile(r"^[0-9]+[KMGT]?$")  # Slurm's --mem: megabytes unless a unit follows
_TIME_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
NETWORK_FS = {"nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "ceph", "fuse.ceph-fuse", "glusterfs",
              "fuse.glusterfs", "panfs", "wekafs", "afs", "fuse.sshfs", "cvfs", "fuse.juicefs", "fuse.gcsfuse",
              "quobyte", "orangefs", "pvfs2", "virtiofs", "9p"}
LOCAL_FS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "overlay", "f2fs", "vfat", "ramfs", "squashfs"}


@dataclass
class SlurmOptions:
    """What a Slurm job asks for. ``None``: not given (Slurm's or the partition's default applies).

    The first block maps to ``ncanvas train`` flags; the rest is set in ``ncanvas.toml`` only."""

    partition: str | None = None
    time: str | None = None  # Slurm's formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
    nodes: int = 1
    gpus_per_node: int = 0  # also the DDP processes per node; 0: CPU (or GPUs asked for through --slurm-arg)
    cpus_per_task: int | None = None
    mem: str | None = None  # per node, e.g. 32G
    account: str | None = None
    qos: str | None = None
    args: list[str] = field(default_factory=list)  # --slurm-arg: passed to sbatch as they are
    warn_before: int = WARN_BEFORE_S  # seconds before the time limit: SIGUSR1, checkpoint, requeue
    max_requeues: int = MAX_REQUEUES
    setup: list[str] = field(default_factory=list)  # shell lines before the trainer: module loads, venv activation
    python: str | None = None  # the interpreter on the nodes (default: the one running ncanvas now)
    check_shared_fs: bool = True  # refuse a workspace that the partition's nodes evidently cannot see

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def time_s(self) -> int | None:
        return parse_time(self.time) if self.time else None

    @property
    def warn_s(self) -> int:
        """The warning actually asked for: at most half the time limit (a warning at the start would requeue a job
        that has not trained yet)."""
        limit = self.time_s
        return self.warn_before if not limit else max(1, min(self.warn_before, limit // 2))


FLAG_NAMES = ("partition", "time", "nodes", "gpus_per_node", "cpus_per_task", "mem", "account", "qos", "args")
TOML_ONLY = ("warn_before", "max_requeues", "setup", "python", "check_shared_fs")


def parse_time(text: str) -> int:
    """Seconds in a Slurm time limit (``90``, ``1:30:00``, ``2-12``, ``30:00``); raises on anything else."""
    t = text.strip().lower()
    if t in ("infinite", "unlimited"):
        return 0
    m = _TIME_RE.match(t)
    if not m:
        raise NcanvasError(f"--time {text!r}: use minutes, MM:SS, HH:MM:SS or D-HH[:MM[:SS]] (Slurm's formats)")
    days, a, b, c = m.groups()
    nums = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
        h, mi, s = (nums + [0, 0])[:3]
        secs = int(days) * 86400 + h * 3600 + mi * 60 + s
    elif len(nums) == 1:
        secs = nums[0] * 60  # minutes
    elif len(nums) == 2:
        secs = nums[0] * 60 + nums[1]  # MM:SS
    else:
        secs = nums[0] * 3600 + nums[1] * 60 + nums[2]
    if secs <= 0:
        raise NcanvasError(f"--time {text!r}: the time limit must be above zero")
    return secs


def toml_defaults(ws: Workspace) -> dict[str, Any]:
    """The ``[slurm]`` table of the workspace's ``ncanvas.toml`` ({} without one); unknown keys are refused."""
    path = ws.root / MARKER
    if not path.is_file():
        return {}
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef,import-not-found]
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("slurm", {})
    except (OSError, ValueError) as e:
        raise NcanvasError(f"cannot read {path}: {e}") from None
    if not isinstance(table, dict):
        raise NcanvasError(f"{path}: [slurm] must be a table")
    known = {f.name for f in fields(SlurmOptions)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise NcanvasError(f"{path} [slurm]: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return dict(table)


def resolve(defaults: dict[str, Any], given: dict[str, Any]) -> SlurmOptions:
    """``given`` (flags; ``None`` or an empty list = not given) over ``defaults`` (``[slurm]``), validated."""
    values = dict(defaults)
    for k, v in given.items():
        if v is not None and v != []:
            values[k] = list(defaults.get("args", [])) + list(v) if k == "args" else v
    try:
        opts = SlurmOptions(**values)
    except TypeError as e:
        raise NcanvasError(f"Slurm options: {e}") from None
    validate(opts)
    return opts


def validate(o: SlurmOptions) -> None:
    """One clear error for the first bad option."""
    for name in ("partition", "account", "qos"):
        value = getattr(o, name)
        if value is not None and (not isinstance(value, str) or not _NAME_RE.match(value)):
            raise NcanvasError(f"--{name} {value!r}: letters, digits and _.,:@+- only")
    _int(o.nodes, "--nodes", 1, 10_000)
    _int(o.gpus_per_node, "--gpus-per-node", 0, 64)
    if o.cpus_per_task is not None:
        _int(o.cpus_per_task, "--cpus-per-task", 1, 4096)
    if o.mem is not None and (not isinstance(o.mem, str) or not _MEM_RE.match(o.mem.upper())):
        raise NcanvasError(f"--mem {o.mem!r}: a size such as 16000 (MB), 32G or 1T")
    if o.time is not None:
        parse_time(str(o.time))
    _int(o.warn_before, "[slurm] warn_before", 1, 65_535)
    _int(o.max_requeues, "[slurm] max_requeues", 0, 1000)
    for key in ("args", "setup"):
        value = getattr(o, key)
        if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
            raise NcanvasError(f"[slurm] {key} must be a list of strings")
    for arg in o.args:
        flag = arg.split("=", 1)[0]
        if not arg.startswith("-"):
            raise NcanvasError(f"--slurm-arg {arg!r}: an sbatch option such as --constraint=a100")
        if flag in _OWNED or (len(flag) > 2 and not flag.startswith("--") and flag[:2] in _OWNED):
            raise NcanvasError(f"--slurm-arg {arg!r}: ncanvas sets {flag} itself ({_OWNED.get(flag, _OWNED.get(flag[:2]))})")
        if "\n" in arg:
            raise NcanvasError(f"--slurm-arg {arg!r}: one option per --slurm-arg, on one line")
    if o.python is not None and not isinstance(o.python, str):
        raise NcanvasError("[slurm] python must be a path or a command name")
    if not isinstance(o.check_shared_fs, bool):
        raise NcanvasError("[slurm] check_shared_fs must be true or false")


def _int(value: Any, flag: str, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise NcanvasError(f"{flag} must be a whole number from {lo} to {hi}; got {value!r}")


def asks_for_gpus(o: SlurmOptions) -> bool:
    """GPUs requested, through --gpus-per-node or a passed-through --gres=gpu / --gpus option."""
    return o.gpus_per_node > 0 or any(a.startswith(("--gres=gpu", "--gpus", "-G")) for a in o.args)


# ===================================================================================== the batch script


@dataclass(frozen=True)
class ScriptPlan:
    """Everything the batch script needs besides the options."""

    job_id: str
    kind: str
    module: str
    log_dir: Path
    code_root: Path
    python: str
    per_node: int  # processes (DDP ranks) on each node
    gpu: bool  # the job asked for GPUs (else CUDA is hidden: a GPU that Slurm did not give is not ours)
    resume: bool  # a resubmission (jobs resume): start from latest.pt


def render_script(o: SlurmOptions, p: ScriptPlan, created: float | None = None) -> str:
    """The text of ``logs/<id>/sbatch.sh``."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(created or time.time()))
    q = shlex.quote
    sb: list[tuple[str, str]] = [
        (f"--job-name=ncanvas:{p.job_id}", "squeue shows the ncanvas job id"),
        (f"--output={p.log_dir / 'stdout.log'}", "the job's log, as for a local job"),
        ("--open-mode=append", "a requeued run appends to it"),
        (f"--chdir={p.log_dir}", ""),
        (f"--nodes={o.nodes}", ""),
        (f"--ntasks-per-node={p.per_node}", "one process (DDP rank) per GPU" if p.per_node > 1 else ""),
        ("--requeue", "a requeue (walltime warning, preemption, node failure) runs this script again"),
        (f"--signal=USR1@{o.warn_s}", "the walltime warning: the trainer saves latest.pt, then requeues"),
    ]
    for flag, value, why in (("--time", o.time, ""), ("--partition", o.partition, ""),
                             ("--gpus-per-node", o.gpus_per_node or None, ""),
                             ("--cpus-per-task", o.cpus_per_task, ""), ("--mem", o.mem, "per node"),
                             ("--account", o.account, ""), ("--qos", o.qos, "")):
        if value is not None:
            sb.append((f"{flag}={value}", why))
    sb += [(a, "passed through (--slurm-arg)") for a in o.args]
    width = max(len(a) for a, _ in sb) + 10
    lines = [
        "#!/bin/bash",
        f"# ncanvas job {p.job_id} ({p.kind}), written {when} by `ncanvas train {p.kind} --backend slurm`"
        + (" and resubmitted by `ncanvas jobs resume`." if p.resume else "."),
        "# It runs the same `python -m jobs.<kind> --run-dir ...` as a local job, into the same run folder. A --after",
        "# dependency is given to sbatch on its command line (--dependency=afterok:<Slurm job id>).",
    ]
    for arg, why in sb:
        line = f"#SBATCH {arg}"
        lines.append(f"{line:<{width}}# {why}" if why else line)
    lines.append("")
    if o.setup:
        lines += ["# set-up from [slurm] setup in ncanvas.toml (module loads, environment activation)", *o.setup, ""]
    lines += [
        "set -u",
        f"export PYTHONPATH={q(str(p.code_root))}${{PYTHONPATH:+:$PYTHONPATH}}  # this ncanvas's code",
        "export PYTHONUNBUFFERED=1",
        "export NCANVAS_BACKEND=slurm  # the trainer takes SIGUSR1 as: save latest.pt, then requeue",
        f"export NCANVAS_MAX_REQUEUES={o.max_requeues}",
        "export CUDA_DEVICE_ORDER=PCI_BUS_ID",
    ]
    if not p.gpu:
        lines.append('export CUDA_VISIBLE_DEVICES=""  # no GPU was asked for: never take one Slurm did not give')
    if o.nodes * p.per_node > 1:
        lines += [
            "# DDP rendezvous: rank 0 runs on the first node of the allocation",
            'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
            f"export MASTER_PORT=$(({MASTER_PORT_BASE} + SLURM_JOB_ID % 20000))",
        ]
    lines += [
        "",
        f'resume="{"--resume" if p.resume else ""}"',
        'if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then resume="--resume"; fi  # a requeued run continues from latest.pt',
        'echo "[ncanvas] Slurm job $SLURM_JOB_ID on $SLURM_JOB_NODELIST (run ${SLURM_RESTART_COUNT:-0})"',
        "",
    ]
    trainer = f"{q(p.python)} -m {p.module} --run-dir {q(str(p.log_dir))} $resume"
    if o.nodes * p.per_node > 1:
        lines += [
            "# one task per rank; each takes its rank from Slurm, as torchrun would hand it over",
            "srun bash -c 'export RANK=$SLURM_PROCID WORLD_SIZE=$SLURM_NTASKS LOCAL_RANK=$SLURM_LOCALID \\",
            "    LOCAL_WORLD_SIZE=$SLURM_NTASKS_PER_NODE; exec \"$@\"' rank \\",
            f"    {trainer}",
        ]
    else:
        lines.append(f"srun {trainer}")
    lines += [
        "rc=$?",
        "# 75: the trainer saved latest.pt after the walltime warning and asks to run again.",
        "# 138: the warning came before the trainer could take it (SIGUSR1 at its start): run again from latest.pt.",
        f'if [ $rc -eq 75 ] || {{ [ $rc -eq 138 ] && [ "${{SLURM_RESTART_COUNT:-0}}" -lt {o.max_requeues} ]; }}; then',
        '    echo "[ncanvas] requeueing Slurm job $SLURM_JOB_ID: the next run resumes from latest.pt"',
        '    scontrol requeue "$SLURM_JOB_ID" && sleep 600  # the requeue ends this script',
        '    echo "[ncanvas] scontrol requeue failed: resume the job with ncanvas jobs resume"',
        "fi",
        "exit $rc  # 0 finished, 76 stopped (so that afterok dependents wait), 1 failed",
        "",
    ]
    return "\n".join(lines)
