"""Job details (``enter``): config, checkpoints, events and the failure reason, read in a thread worker."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from core.errors import NcanvasError
from core.gpu import fmt_mb
from core.paths import Workspace
from tui.fmt import STATE_STYLE, fmt_duration, slurm_line


def _when(t: float | None) -> str:
    return "-" if t is None else _dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def gather(ws: Workspace, job_id: str, n_events: int = 30) -> dict[str, Any]:
    """Everything the details view shows, read from the run directory (blocking: call from a worker)."""
    from core.logtext import last_lines
    from core.metrics import tail_rows
    from jobs.supervisor import job_status

    st = job_status(ws, job_id)
    run = ws.run(job_id)
    ckpts = []
    if run.ckpt_dir.is_dir():
        for p in sorted(run.ckpt_dir.iterdir()):
            size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
            ckpts.append((p.name, size, p.stat().st_mtime))
    events = [r for r in tail_rows(run.metrics, 1 << 20) if "event" in r][-n_events:]
    return {"status": st, "checkpoints": ckpts, "events": events, "log": last_lines(run.stdout, 12)}


def render_details(info: dict[str, Any]) -> list[Any]:
    """Rich renderables for :func:`gather`'s result."""
    st = info["status"]
    rec = st.record
    head = Text()
    head.append(f"{rec.id}", style="bold")
    head.append(f"  {rec.kind}  ")
    head.append(st.state, style=STATE_STYLE.get(st.state, ""))
    head.append(f"  attempts {rec.attempts}  gpu {rec.gpu}  elapsed {fmt_duration(st.elapsed_s)}")
    head.append(f"\ncreated {_when(rec.created)}  started {_when(rec.started)}  ended {_when(rec.ended)}")
    out: list[Any] = [head]
    if rec.backend == "slurm":
        out.append(Text("\n" + slurm_line(st)))
    out += _cause_lines(st)
    for badge in getattr(st, "health", ()):
        out.append(Text(f"health: {badge['code'].replace('_', ' ')}: {badge['text']}", style="yellow"))
    out.append(Text("\nconfig", style="bold underline"))
    out.append(Text(json.dumps(rec.config, indent=2, sort_keys=True)))
    ck = Table("checkpoint", "size", "saved", title=None, box=None, title_justify="left")
    for name, size, mtime in info["checkpoints"]:
        ck.add_row(name, fmt_mb(size / 2**20), _when(mtime))
    out += [Text("\ncheckpoints", style="bold underline"), ck if info["checkpoints"] else Text("none yet")]
    out.append(Text("\nevents", style="bold underline"))
    for ev in info["events"]:
        fields = " ".join(f"{k}={v}" for k, v in ev.items() if k not in ("v", "t", "event"))
        out.append(Text(f"{_when(ev.get('t'))}  {ev['event']:<10} {fields}"))
    if not info["events"]:
        out.append(Text("none"))
    out.append(Text("\nlog (last lines)", style="bold underline"))
    out.append(Text("\n".join(info["log"]) or "empty"))
    return out


def _cause_lines(st: Any) -> list[Text]:
    """Why it failed (one sentence), the fix, the evidence and where it was raised; else the plain reason."""
    cause = getattr(st, "cause", None)
    reason = st.reason or st.record.error
    if not cause:
        return [Text(f"\nreason: {reason}", style="bold red")] if reason else []
    out = [Text(f"\ncause: {cause.get('summary')}", style="bold red")]
    if reason and reason != cause.get("summary"):
        out.append(Text(f"error: {reason}", style="red"))
    out.append(Text(f"fix: {cause.get('fix')}", style="bold green"))
    out += [Text(f"evidence: {line}") for line in cause.get("evidence") or []
            if line and line not in (cause.get("summary"), reason)]
    if cause.get("where"):
        out.append(Text(f"raised at: {cause['where']} (the traceback is in the log below)"))
    return out


class DetailsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close")]

    DEFAULT_CSS = """
    DetailsScreen { align: center middle; }
    DetailsScreen > VerticalScroll {
        width: 100; max-width: 100%; height: 90%; border: round $accent; background: $surface; padding: 0 1;
    }
    """

    def __init__(self, ws: Workspace, job_id: str) -> None:
        super().__init__()
        self.ws, self.job_id = ws, job_id
        self.plain = ""

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = f"details · {self.job_id} (esc closes)"
            yield Static("loading…", id="details")

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True)
    def load(self) -> None:
        try:
            info = gather(self.ws, self.job_id)
        except NcanvasError as e:
            self.plain = str(e)
            self.app.call_from_thread(self.query_one("#details", Static).update, Text(str(e), style="red"))
            return
        from rich.console import Group

        parts = render_details(info)
        self.plain = "\n".join(p.plain for p in parts if isinstance(p, Text))  # for tests and copy/paste
        self.app.call_from_thread(self.query_one("#details", Static).update, Group(*parts))
