"""The top bar: host, running/paused job counts, GPU utilisation and memory per GPU (``N/A`` without NVML)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from core.gpu import fmt_mb
from tui.guard import safe_render


def gpu_text(stats: list[Any]) -> Text:
    if not stats:
        return Text("GPU N/A", style="dim")
    out = Text()
    for i, g in enumerate(stats):
        if i:
            out.append("  ")
        util = "N/A" if g.util_pct is None else f"{g.util_pct:.0f}%"
        out.append(f"GPU{g.index} ", style="bold")
        out.append(f"{util} {fmt_mb(g.mem_used_mb)}/{fmt_mb(g.mem_total_mb)}")
    return out


class StatusBar(Static):
    """Attributes down: the app sets :attr:`gpus` and :attr:`running`; ``host`` is fixed at construction."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $foreground; padding: 0 1; }
    """

    gpus: reactive[list[Any]] = reactive(list, always_update=True)
    running: reactive[int] = reactive(0)
    paused: reactive[int] = reactive(0)
    workspace: reactive[str] = reactive("")

    def __init__(self, host: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host

    @safe_render
    def render(self) -> Text:
        out = Text()
        out.append("ncanvas", style="bold")
        out.append(f" · {self.host} · ")
        # job counts before the GPU list: on a narrow terminal with several GPUs it is the GPUs that get cut
        out.append(f"{self.running} running", style="bold green" if self.running else "dim")
        if self.paused:
            out.append(f", {self.paused} paused", style="bold yellow")
        out.append(" · ")
        out.append_text(gpu_text(self.gpus))
        if self.workspace:
            out.append(f" · {self.workspace}", style="dim")
        return out
