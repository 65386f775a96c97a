"""The jobs table: one row per job, updated in place; space marks rows for the curve overlay."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from tui.fmt import STATE_STYLE, fmt_duration, fmt_num, fmt_progress, fmt_slurm, headline_metric, throughput
from tui.messages import SelectionChanged

# (key, label, width): fixed widths so a growing value ("running", "ep 12/50 · 3000/9000") is never cut
COLUMNS = (("mark", " ", 1), ("id", "id", 10), ("kind", "kind", 6), ("state", "state", 8),
           ("progress", "epoch/step", 18), ("loss", "loss", 7), ("metric", "metric", 14), ("speed", "speed", 11),
           ("elapsed", "elapsed", 7), ("eta", "ETA", 7), ("gpu", "GPU", 8))


def _gpu_cell(st: Any) -> str:
    if getattr(st.record, "backend", "local") == "slurm":  # the Slurm job id and its node (details: enter)
        return fmt_slurm(st, width=8, reason=False)
    gpu = st.record.gpu or "cpu"
    where = "cpu" if gpu == "cpu" else f"gpu{gpu}"
    if st.gpu_mem_mb:
        where += f" {st.gpu_mem_mb:.0f}M"  # a paused job still holds its memory: show it
    return where


def _pending(st: Any) -> str:
    """A Slurm job waiting in Slurm's queue shows why in the ETA cell (Priority, Resources, Dependency...)."""
    info = getattr(st, "slurm", None)
    return str(info["reason"]) if info and info.get("state") == "PENDING" and info.get("reason") != "None" else ""


def row_cells(st: Any, marked: bool) -> list[Any]:
    """The cells of one job row, in :data:`COLUMNS` order."""
    prog = st.record.progress or {}
    state = Text(st.state, style=STATE_STYLE.get(st.state, ""))
    return ["●" if marked else " ", st.id, st.record.kind, state, fmt_progress(prog), fmt_num(prog.get("loss")),
            headline_metric(prog), throughput(prog), fmt_duration(st.elapsed_s),
            "paused" if st.state == "paused" else _pending(st) or fmt_duration(st.eta_s),
            _gpu_cell(st)]


def matches(st: Any, needle: str) -> bool:
    """Filter: every word of ``needle`` is in the job's id, kind or state."""
    hay = f"{st.id} {st.record.kind} {st.state}".lower()
    return all(word in hay for word in needle.lower().split())


class JobsTable(DataTable[Any]):
    """Rows keyed by job id. Posts :class:`SelectionChanged` when the cursor or the marks change."""

    BINDINGS = [Binding("space", "toggle_mark", "Mark", tooltip="Overlay this job's curves")]

    DEFAULT_CSS = """
    JobsTable { height: 1fr; min-height: 4; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.marked: set[str] = set()
        self.statuses: dict[str, Any] = {}
        self._last_selection: tuple[tuple[str, ...], str | None] | None = None

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

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
        """Make the rows match ``statuses`` (filtered by ``needle``), keeping the cursor on the same job."""
        self.statuses = {st.id: st for st in statuses}
        shown = [st for st in statuses if not needle or matches(st, needle)]
        keep = {st.id for st in shown}
        current = self.current_id
        for key in list(self.rows):
            if key.value not in keep:
                self.remove_row(key)
        self.marked &= set(self.statuses)
        for st in shown:
            cells = row_cells(st, st.id in self.marked)
            try:
                self.get_row_index(st.id)
            except RowDoesNotExist:
                self.add_row(*cells, key=st.id)
                continue
            for (col, _, _), value in zip(COLUMNS, cells):
                if self.get_cell(st.id, col) != value:
                    self.update_cell(st.id, col, value)
        if current in keep:
            self.move_cursor(row=self.get_row_index(current))
        self._announce()

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
