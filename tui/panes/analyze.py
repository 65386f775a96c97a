"""The Analyze pane (issue 7): painting → art CNN (top-3 per head, Grad-CAM per head) → streamed explanation."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Select, Static

from core.errors import NcanvasError
from tui.inference import GenSettings
from tui.messages import ArtAnalyzed
from tui.panes.base import InferencePane, PathSuggester
from tui.panes.classify import topk_table
from tui.widgets.field import Field


class AnalyzePane(InferencePane):
    pane_id = "analyze"
    title = "Analyze"
    kinds = ("artcnn",)

    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="Cancel the explanation (and leave the text field)"),
                Binding("ctrl+r", "analyze", "Analyze", tooltip="Analyze the painting: top classes and Grad-CAM per "
                        "head, then the explanation")]

    DEFAULT_CSS = """
    AnalyzePane #panels { height: 2fr; }
    AnalyzePane #picture { width: auto; min-width: 20; padding: 1 2 0 0; }
    AnalyzePane .head { width: 1fr; padding: 1 1 0 0; }
    AnalyzePane #story { height: 1fr; min-height: 4; border: round $panel; padding: 0 1; }
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cancel = threading.Event()
        self.prompt = ""
        # `ncanvas analyze`'s defaults (temperature 0.7, seed 0): the pane and the command tell the same story
        self.settings = GenSettings(temperature=0.7, seed=0)

    def compose(self) -> ComposeResult:
        with Horizontal(classes="controls"):
            yield Select([], prompt="art CNN checkpoint", id="ckpt", classes="ckpt")
            yield Select([], prompt="LLM checkpoint", id="llm", classes="llm optional")
        with Horizontal(classes="controls"):
            yield Field(placeholder="painting: image path", id="image", suggester=PathSuggester())
            yield Button("Analyze", id="go", variant="primary")
        yield Static("enter analyzes · esc cancels the explanation", id="status")
        with Horizontal(id="panels"):
            yield Static(id="picture")
            for head in ("artist", "style", "genre"):
                yield Static(id=f"head-{head}", classes="head")
        with VerticalScroll(id="story") as story:
            story.border_title = "explanation"
            yield Static("", id="explanation")

    def scan(self) -> None:
        from tui.inference import LLM_KINDS, list_checkpoints

        super().scan()
        try:
            llms = list_checkpoints(self.ws, LLM_KINDS)
        except NcanvasError:
            return
        self.app.call_from_thread(self._fill_llm, llms)

    def _fill_llm(self, llms: list[Any]) -> None:
        select = self.query_one("#llm", Select)
        current = select.value
        select.set_options([(c.label, c.path) for c in llms])
        if current in [c.path for c in llms]:
            select.value = current

    @on(Input.Submitted, "#image")
    @on(Button.Pressed, "#go")
    def action_analyze(self) -> None:
        try:
            ckpt = self.checkpoint()
        except NcanvasError as e:
            self.fail(e)
            return
        llm = self.query_one("#llm", Select).value
        self._cancel.set()
        self._cancel = threading.Event()
        self.set_status("analyzing…")
        self.query_one("#explanation", Static).update("")
        self.run_analyze(ckpt, self.query_one("#image", Input).value, llm if isinstance(llm, str) else None,
                         self._cancel)

    def action_cancel(self) -> None:
        """``esc``: stop the explanation, and leave the text field."""
        self.action_leave()
        self._cancel.set()

    @work(thread=True, exclusive=True, group="analyze")
    def run_analyze(self, ckpt: str, image: str, llm: str | None, cancel: threading.Event) -> None:
        from tui import inference

        try:
            res = inference.analyze(ckpt, image)
            picture = inference.render(res.image, 32, 16)
            heads: dict[str, Any] = {}
            for head, top in res.heads.items():
                parts: list[Any] = [Text(head, style="bold underline"), topk_table(top, None, 10)]
                if head in res.cams:  # which region drove this head's top class
                    parts.append(inference.render(inference.blend(res.image, res.cams[head], 0.5), 24, 12))
                heads[head] = Group(*parts)
        except Exception as e:  # noqa: BLE001 - a notification, never a crash
            self._post(cancel, self.fail, e)
            return
        self._post(cancel, self._show, picture, heads, res.prompt)
        self._post(cancel, self.post_message, ArtAnalyzed(ckpt, image, res.prompt))
        if llm is None:
            self._post(cancel, self.set_status, "done (choose an LLM checkpoint for the explanation)")
            return
        text = ""
        try:
            for token in inference.explain_stream(llm, res.prompt, self.settings, cancel):
                if cancel.is_set():
                    break
                text += token
                self._post(cancel, self.query_one("#explanation", Static).update, text)
        except Exception as e:  # noqa: BLE001
            self._post(cancel, self.fail, e)
            return
        self._post(cancel, self.set_status, "cancelled" if cancel.is_set() else "done")

    def _post(self, cancel: threading.Event, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` on the UI thread unless a newer analysis has replaced this one (its worker thread
        cannot be interrupted and may still be finishing)."""
        def run() -> None:
            if cancel is self._cancel:
                fn(*args)

        self.app.call_from_thread(run)

    def _show(self, picture: Any, heads: dict[str, Any], prompt: str) -> None:
        self.query_one("#picture", Static).update(picture)
        for head, renderable in heads.items():
            for widget in self.query(f"#head-{head}").results(Static):
                widget.update(renderable)
        self.prompt = prompt
        one_line = " · ".join(ln.strip() for ln in prompt.splitlines() if ln.strip())
        self.query_one("#story").border_title = f"explanation · {one_line}"
        self.set_status("explaining… (esc cancels)")
