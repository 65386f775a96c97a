"""What the inference panes share: a checkpoint picker filled by a worker, image-path completion, errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.containers import Vertical
from textual.suggester import Suggester
from textual.widgets import Input, Select, Static

from core.errors import NcanvasError
from core.paths import Workspace
from tui.messages import Classified


class PathSuggester(Suggester):
    """Completes file paths (and the ``sample:`` prefix) as the user types."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        if "sample:".startswith(value):
            return "sample:0"
        path = Path(os.path.expanduser(value))
        folder, stem = (path, "") if value.endswith("/") else (path.parent, path.name)
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            return None
        for name in names:
            if name.startswith(stem) and not name.startswith(".") and name != stem:
                return value + name[len(stem):] + ("/" if (folder / name).is_dir() else "")
        return None


def error_text(e: BaseException) -> str:
    """One line for a notification: the NcanvasError message, or the type and first line of anything else."""
    if isinstance(e, NcanvasError):
        return str(e)
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first}"


class InferencePane(Vertical, can_focus=True):
    """A pane with a checkpoint picker (``#ckpt``) for the jobs of :attr:`kinds` and a status line (``#status``).

    The pane itself takes focus (switching to it focuses it), so its keys act at once; ``esc`` in one of its fields
    leaves the field and gives the focus back to the pane.
    """

    pane_id = ""
    title = ""
    kinds: tuple[str, ...] = ()

    BINDINGS = [Binding("escape", "leave", "Leave field",
                        tooltip="Leave the text field: the pane's keys (and digits for panes) act again")]

    DEFAULT_CSS = """
    InferencePane { padding: 0 1; }
    InferencePane .controls { height: auto; }
    InferencePane .controls > Select { width: 40; }
    InferencePane .controls > Input { width: 1fr; }
    InferencePane #status { height: auto; color: $text-muted; }
    InferencePane #ckpt-info { height: 1; color: $text-muted; padding: 0 1; }
    InferencePane #status.-warning { color: $warning; }
    InferencePane #status.-error { color: $error; }
    """

    def __init__(self, ws: Workspace, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ws = ws
        self.choices: list[Any] = []  # tui.inference.CheckpointChoice of the last scan

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave":  # only offered (and shown in the footer) while a text field of the pane has focus
            return isinstance(self.app.focused, Input)
        return True

    def action_leave(self) -> None:
        self.focus()

    def use_classification(self, event: Classified) -> None:
        """A classification made in the Classify pane: panes with the ``uses-classification`` class take it."""

    def on_show(self) -> None:
        self.scan_checkpoints()

    @work(thread=True, exclusive=True, group="scan")
    def scan_checkpoints(self) -> None:
        self.scan()

    def scan(self) -> None:
        """List the checkpoints (blocking, in the worker) and fill the pickers on the UI thread."""
        from tui.inference import list_checkpoints

        try:
            choices = list_checkpoints(self.ws, self.kinds)
        except NcanvasError as e:
            self.app.call_from_thread(self.set_status, str(e), True)
            return
        self.app.call_from_thread(self._fill, choices)

    def _fill(self, choices: list[Any]) -> None:
        from tui.inference import preferred

        self.choices = choices
        best = preferred(choices, self.dataset_hint())
        for select in self.query(".ckpt").results(Select):
            current = select.value
            select.set_options([(c.label, c.path) for c in choices])
            if current in [c.path for c in choices]:
                select.value = current
            elif best is not None and not select.has_class("optional"):
                select.value = best.path
        self.show_ckpt_info()
        if not choices:
            self.set_status(f"no {'/'.join(self.kinds)} checkpoints in this workspace yet: train one from the Jobs pane")
        elif best is None and not isinstance(self.query_one("#ckpt", Select).value, str):
            self.set_status("no finished or running job has a best_model.pt yet: choose a checkpoint (untrained "
                            "and failed ones are listed too)")

    def dataset_hint(self) -> str | None:
        """The dataset the default checkpoint should have trained on (the Classify and Grad-CAM panes: the one an
        image spec such as ``mnist:7`` names)."""
        return None

    @on(Select.Changed)
    def _select_changed(self) -> None:
        self.show_ckpt_info()

    def known_choices(self) -> list[Any]:
        """Every checkpoint the pane's pickers offer."""
        return self.choices

    def show_ckpt_info(self) -> None:
        """Which job the chosen checkpoint comes from, what it trained on, how good it is, its state."""
        chosen = []
        known = self.known_choices()
        for select in self.query(".ckpt, .llm").results(Select):
            choice = next((c for c in known if c.path == select.value), None)
            if choice is not None:
                chosen.append(choice.info)
        for info in self.query("#ckpt-info").results(Static):
            info.update(Text("  vs  ".join(chosen)))

    def checkpoint(self, selector: str = "#ckpt") -> str:
        value = self.query_one(selector, Select).value
        if not isinstance(value, str):
            raise NcanvasError(f"choose a {'/'.join(self.kinds)} checkpoint first")
        return value

    def set_status(self, text: str, error: bool = False, warning: bool = False) -> None:
        status = self.query_one("#status", Static)
        status.update(Text(text))  # never markup: paths and error messages hold brackets
        status.set_class(error, "-error")
        status.set_class(warning and not error, "-warning")

    def fail(self, e: BaseException) -> None:
        """Report an error from a worker (call through ``call_from_thread``): status line and notification."""
        line = error_text(e)
        self.set_status(line, True)
        self.notify(line, severity="error", title=self.title)
