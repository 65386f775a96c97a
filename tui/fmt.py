"""Small formatting helpers shared by the CLI and the dashboard. No torch."""

from __future__ import annotations

import math
from typing import Any

from core.runrec import JobState
from jobs.kinds import KINDS

STATE_STYLE: dict[str, str] = {
    JobState.QUEUED: "cyan", JobState.RUNNING: "green", JobState.PAUSED: "yellow", JobState.STOPPING: "yellow",
    JobState.STOPPED: "blue", JobState.FINISHED: "bold green", JobState.FAILED: "bold red",
    JobState.KILLED: "magenta",
}


def _number(v: Any) -> float | None:
    """``v`` as a finite float, or None for anything else a hand-edited job.json may hold."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def fmt_duration(seconds: Any) -> str:
    secs = _number(seconds)
    if secs is None or secs < 0:
        return "-"
    s = int(secs)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def fmt_num(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)[:24]  # whatever a hand-edited job.json holds, one cell's worth


def fmt_progress(progress: dict[str, Any], short: bool = False) -> str:
    """'ep 2/5 · 300/750' from a job.json progress dict ('2/5 · 300/750' ``short``, under an epoch/step header)."""
    parts = []
    if progress.get("epoch") is not None:
        te = progress.get("total_epochs")
        parts.append(("" if short else "ep ") + f"{progress['epoch']}" + (f"/{te}" if te else ""))
    if progress.get("step") is not None:
        ts = progress.get("total_steps")
        parts.append(f"{progress['step']}" + (f"/{ts}" if ts else ""))
    return " · ".join(parts) or "-"


FALLBACK_HEADLINES = ("val_acc", "val_ppl", "val_loss")  # a job of an unknown kind (or without a metric)


def headline_metric(progress: dict[str, Any], kind: str | None = None) -> str:
    """``val_acc=0.93``: the kind's headline metric (``jobs.kinds.KindSpec.headline``), else the first of
    val_acc / val_ppl / val_loss the job reported; ``-`` when there is none."""
    spec = KINDS.get(kind or "")
    keys = ((spec.headline,) if spec is not None and spec.headline else ()) + FALLBACK_HEADLINES
    for key in keys:
        if progress.get(key) is not None:
            return f"{key}={fmt_num(progress[key])}"
    return "-"


def throughput(progress: dict[str, Any], kind: str | None = None) -> str:
    """``5120 tok/s``: the kind's throughput key and unit (``KindSpec.throughput``); for an unknown kind, the
    first throughput key of any kind that the job reported."""
    spec = KINDS.get(kind or "")
    specs = [spec] if spec is not None else list(KINDS.values())
    for s in specs:
        v = _number(progress.get(s.throughput))
        if v:
            return f"{v:.0f} {s.throughput_unit}"
    return "-"


def fmt_eta(state: str, eta_s: float | None) -> str:
    """The ETA column: a paused job is not getting closer to the end, so it says so instead of a stale time."""
    if state == JobState.PAUSED:
        return "paused"
    return fmt_duration(eta_s)


def fmt_slurm(st: Any, width: int | None = None, reason: bool = True) -> str:
    """Where a Slurm job is, for tables: ``#123 node01``, ``#123 Priority`` while pending (``reason``); '' for a
    local job."""
    info = getattr(st, "slurm", None)
    if not info or not info.get("job_id"):
        return "submitting" if getattr(st.record, "backend", "local") == "slurm" else ""
    pending = reason and info.get("state") in ("PENDING", "REQUEUED") and info.get("reason") != "None"
    where = info.get("nodes") or (info.get("reason") if pending else "") or ""
    text = f"#{info['job_id']} {where}".strip()
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def slurm_line(st: Any) -> str:
    """``jobs show``'s Slurm line: job id, Slurm's state and node list (or pending reason), partition, requeues."""
    r, now = st.record, st.slurm or {}
    opts = r.slurm.get("options", {})
    parts = [f"slurm: job {r.slurm.get('job_id') or '(being submitted)'}"]
    if now.get("state"):
        parts.append(now["state"] + (f" ({now['reason']})" if now.get("reason") not in (None, "None") else ""))
    if now.get("nodes"):
        parts.append(f"nodes {now['nodes']}")
    parts.append(f"partition {opts.get('partition') or 'default'}")
    if opts.get("time"):
        parts.append(f"time {opts['time']}")
    parts.append(f"requeues {r.requeues}/{opts.get('max_requeues', '?')}")
    if r.slurm.get("history"):
        parts.append(f"earlier {', '.join(map(str, r.slurm['history']))}")
    parts.append(f"script {r.slurm.get('script', '-')}")
    return "   ".join(parts)
