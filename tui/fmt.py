"""Small formatting helpers shared by the CLI and the dashboard. No torch."""

from __future__ import annotations

from typing import Any

STATE_STYLE = {
    "queued": "cyan", "running": "green", "paused": "yellow", "stopping": "yellow",
    "stopped": "blue", "finished": "bold green", "failed": "bold red", "killed": "magenta",
}


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    s = int(seconds)
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
    return str(v)


def fmt_progress(progress: dict[str, Any]) -> str:
    """'epoch 2/5 · step 300/750' from a job.json progress dict."""
    parts = []
    if progress.get("epoch") is not None:
        te = progress.get("total_epochs")
        parts.append(f"ep {progress['epoch']}" + (f"/{te}" if te else ""))
    if progress.get("step") is not None:
        ts = progress.get("total_steps")
        parts.append(f"{progress['step']}" + (f"/{ts}" if ts else ""))
    return " · ".join(parts) or "-"


METRIC_KEYS = ("val_acc", "acc", "val_ppl", "ppl", "val_loss")


def headline_metric(progress: dict[str, Any]) -> str:
    for key in METRIC_KEYS:
        if progress.get(key) is not None:
            return f"{key}={fmt_num(progress[key])}"
    return "-"


def throughput(progress: dict[str, Any]) -> str:
    if progress.get("tok_s"):
        return f"{progress['tok_s']:.0f} tok/s"
    if progress.get("img_s"):
        return f"{progress['img_s']:.0f} img/s"
    return "-"


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
