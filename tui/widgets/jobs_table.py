"""The jobs table: one row per job, updated in place; space marks rows for the curve overlay.

Columns have fixed widths, so a growing value ("running", "ep 12/50 · 3000/9000") never shifts or gets cut; a
terminal too narrow for all of them drops whole columns, the least useful first (kind, which the id repeats; then
elapsed, loss, speed, the note, GPU, metric, ETA), instead of cutting the ones on the right. The note is a failed
job's short reason or a running job's health badges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from core.runrec import FAILED
from tui.fmt import (
    STATE_STYLE,
    fmt_duration,
    fmt_eta,
    fmt_num,
    fmt_progress,
    fmt_slurm,
    headline_metric,
    throughput,
)
from tui.messages import SelectionChanged


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    drop: int = 0  # narrow terminals drop columns with the highest rank first; 0: always shown


COLUMNS = (Column("mark", " ", 1), Column("id", "id", 11), Column("kind", "kind", 6, drop=8),
           Column("state", "state", 8), Column("progress", "epoch/step", 18), Column("loss", "loss", 7, drop=6),
           Column("metric", "metric", 15, drop=2), Column("speed", "speed", 14, drop=5),
           Column("elapsed", "elapsed", 7, drop=7), Column("eta", "ETA", 7, drop=1),
           Column("gpu", "GPU", 11, drop=3), Column("note", "note", 20, drop=4))
NOTE_WIDTH = 20


def fit_columns(width: int, padding: int = 1, note: bool = True) -> tuple[Column, ...]:
    """The columns that fit ``width`` cells (each column takes its width plus ``padding`` on both sides); the note
    column only with ``note`` (some job has one to show)."""
    shown = [c for c in COLUMNS if note or c.key != "note"]
    for col in sorted((c for c in shown if c.drop), key=lambda c: -c.drop):
        if sum(c.width + 2 * padding for c in shown) <= width:
            break
        shown.remove(col)
    return tuple(shown)


def _gpu_cell(st: Any) -> str:
    if getattr(st.record, "backend", "local") == "slurm":  # the Slurm job id and its node (details: enter)
        return fmt_slurm(st, width=11, reason=False)
    gpu = st.record.gpu or "cpu"
    where = "cpu" if gpu == "cpu" else f"gpu{gpu}"
    if st.gpu_mem_mb:
        where += f" {st.gpu_mem_mb:.0f}M"  # a paused job still holds its memory: show it
    return where


def _pending(st: Any, width: int) -> str:
    """A Slurm job waiting in Slurm's queue shows why in the ETA cell (Priority, Resources, Dependency...), cut to
    the cell (the details and ``jobs show`` give it whole)."""
    info = getattr(st, "slurm", None)
    if not (info and info.get("state") == "PENDING" and info.get("reason") not in (None, "None")):
        return ""
    why = str(info["reason"])
    return why if len(why) <= width else why[: width - 1] + "…"


_ETA_WIDTH = next(c.width for c in COLUMNS if c.key == "eta")


def row_cells(st: Any, marked: bool) -> dict[str, Any]:
    """The cells of one job row, by column key."""
    prog = st.record.progress if isinstance(st.record.progress, dict) else {}
    kind = st.record.kind
    if kind == "?":  # a run folder whose job.json cannot be read: the reason takes the progress cell
        return {**dict.fromkeys((c.key for c in COLUMNS), "-"), "note": Text(""), "mark": "●" if marked else " ", "id": st.id,
                "state": Text(st.state, style="bold red"), "progress": Text(st.reason or "")}
    return {"mark": "●" if marked else " ", "id": st.id, "kind": kind,
            "state": Text(st.state, style=STATE_STYLE.get(st.state, "")), "progress": fmt_progress(prog, short=True),
            "loss": fmt_num(prog.get("loss")), "metric": headline_metric(prog, kind),
            "speed": throughput(prog, kind), "elapsed": fmt_duration(st.elapsed_s), "eta": _pending(st, _ETA_WIDTH) or fmt_eta(st.state, st.eta_s),
            "gpu": _gpu_cell(st), "note": _note_cell(st)}


def _note_cell(st: Any) -> Text:
    """A failed job's short reason (red) or a running job's health badges (yellow), cut to the column."""
    note = str(getattr(st, "note", "") or "")
    if len(note) > NOTE_WIDTH:
        note = note[:NOTE_WIDTH - 1] + "…"
    return Text(note, style="red" if st.state == FAILED else "yellow")


def matches(st: Any, needle: str) -> bool:
    """Filter: every word of ``needle`` is in the job's id, kind or state."""
    hay = f"{st.id} {st.record.kind} {st.state}".lower()
    return all(word in hay for word in needle.lower().split())


class JobsTable(DataTable[Any]):
    """Rows keyed by job id, in the order of the statuses. Posts :class:`SelectionChanged` when the cursor or the
    marks change."""

    BINDINGS = [Binding("space", "toggle_mark", "Mark", tooltip="Mark the job: marked jobs are overlaid in the curves")]

    DEFAULT_CSS = """
    JobsTable { height: auto; max-height: 45%; min-height: 2; scrollbar-size-vertical: 1; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.marked: set[str] = set()
        self.statuses: dict[str, Any] = {}
        self.shown: list[Any] = []  # the statuses in the rows, in order
        self.columns_shown: tuple[Column, ...] = ()
        self._needle = ""
        self._restore: str | None = None  # the cursor's job across a rebuild of the columns
        self._last_selection: tuple[tuple[str, ...], str | None] | None = None

    def on_mount(self) -> None:
        self._set_columns(COLUMNS)

    def on_resize(self) -> None:
        if self._fit_columns():
            self._rebuild()

    def _fit_columns(self) -> bool:
        """Columns for the width and the notes there are; True if they changed."""
        notes = any(getattr(st, "note", "") for st in self.statuses.values())
        fit = fit_columns(self.size.width - 1, self.cell_padding, notes)  # room for the (thin) vertical scrollbar
        if fit == self.columns_shown:
            return False
        self._set_columns(fit)
        return True

    def _set_columns(self, columns: tuple[Column, ...]) -> None:
        current = self.current_id
        self.clear(columns=True)
        self.columns_shown = columns
        for col in columns:
            self.add_column(col.label, key=col.key, width=col.width)
        self._restore = current or self._restore

    @property
    def current_id(self) -> str | None:
        """The job under the cursor, or None on an empty table."""
        if self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - cursor outside the rows right after a removal
            return None
        return str(key.value) if key.value is not None else None

    def show(self, statuses: Sequence[Any], needle: str = "") -> None:
        """Make the rows match ``statuses`` (filtered by ``needle``) in their order, keeping the cursor on the same
        job."""
        self.statuses = {st.id: st for st in statuses}
        if self.size.width:  # a note appeared or went: the columns change (once mounted and sized)
            self._fit_columns()
        self._needle = needle
        self.shown = [st for st in statuses if not needle or matches(st, needle)]
        keep = [st.id for st in self.shown]
        current = self.current_id or self._restore
        for key in list(self.rows):
            if key.value not in keep:
                self.remove_row(key)
        self.marked &= set(self.statuses)
        for st in self.shown:
            cells = row_cells(st, st.id in self.marked)
            try:
                self.get_row_index(st.id)
            except RowDoesNotExist:
                self.add_row(*(cells[c.key] for c in self.columns_shown), key=st.id)
                continue
            for col in self.columns_shown:
                if self.get_cell(st.id, col.key) != cells[col.key]:
                    self.update_cell(st.id, col.key, cells[col.key])
        if [str(row.key.value) for row in self.ordered_rows] != keep:
            # rows a filter removed come back at the end: put every row back in the statuses' order
            order = {jid: i for i, jid in enumerate(keep)}
            self.sort("id", key=lambda jid: order.get(str(jid), len(order)))
        if current is not None and current in keep:
            self.move_cursor(row=self.get_row_index(current))
        self._restore = None
        self._announce()

    def _rebuild(self) -> None:
        """Rows again after the columns changed (a resize)."""
        self.show(list(self.statuses.values()), self._needle)

    def select(self, job_id: str) -> None:
        try:
            self.move_cursor(row=self.get_row_index(job_id))
        except RowDoesNotExist:
            return

    def action_toggle_mark(self) -> None:
        jid = self.current_id
        if jid is None:
            return
        self.marked ^= {jid}
        self.update_cell(jid, "mark", "●" if jid in self.marked else " ")
        self._announce()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._announce()

    def _announce(self) -> None:
        current = self.current_id
        ids = tuple(dict.fromkeys([i for i in (current,) if i] + sorted(self.marked)))
        selection = (ids, current)
        if selection != self._last_selection:
            self._last_selection = selection
            self.post_message(SelectionChanged(ids, current))
