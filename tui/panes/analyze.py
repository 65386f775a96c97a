"""The Analyze pane (issue 7): painting → art CNN (top-3 per head, Grad-CAM per head) → streamed explanation,
decoded grounded, with the checker's ✓/✗ per fact under it (issue 14)."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Select, Static

from core.errors import NcanvasError
from core.sampling_defaults import ANALYZE, DEFAULT_DECODE, DEFAULT_TRIES
from tui.inference import GenSettings
from tui.messages import ArtAnalyzed
from tui.panes.base import InferencePane, PathSuggester
from tui.panes.classify import topk_table
from tui.widgets.field import Field
from tui.widgets.verdict import verdict_text

HEADS = ("artist", "style", "genre")


def head_table(head: str, top: list[tuple[str, float]]) -> Group:
    """One head's title and top classes; a long name wraps instead of being cut."""
    return Group(Text(head, style="bold underline"), topk_table(top, None, 0))


class AnalyzePane(InferencePane):
    pane_id = "analyze"
    title = "Analyze"
    kinds = ("artcnn",)

    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="Cancel the explanation; with none running, leave the "
                        "text field"),
                Binding("ctrl+r", "analyze", "Analyze", tooltip="Analyze the painting: top classes and Grad-CAM per "
                        "head, then the explanation")]

    DEFAULT_CSS = """
    AnalyzePane #panels { height: 2fr; }
    AnalyzePane #picture { width: auto; min-width: 20; padding: 1 2 0 0; }
    AnalyzePane #heads { width: 1fr; height: auto; }
    AnalyzePane #head-tables, AnalyzePane #head-cams { height: auto; }
    AnalyzePane .head, AnalyzePane .cam { width: 1fr; height: auto; padding: 1 1 0 0; }
    AnalyzePane #story { height: 1fr; min-height: 4; border: round $panel; padding: 0 1; }
    AnalyzePane #verdict { margin: 1 0 0 0; }
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cancel = threading.Event()
        self.prompt = ""
        self.llm_choices: list[Any] = []
        self.busy = False  # an analysis or its explanation is running (esc cancels it)
        # `ncanvas analyze`'s defaults (temperature 0.7, seed 0): the pane and the command tell the same story
        self.settings = GenSettings.of(ANALYZE)
        self.decode, self.tries = DEFAULT_DECODE, DEFAULT_TRIES  # `ncanvas analyze`'s --decode/--tries defaults

    def compose(self) -> ComposeResult:
        with Horizontal(classes="controls"):
            yield Select([], prompt="art CNN checkpoint", id="ckpt", classes="ckpt")
            yield Select([], prompt="LLM checkpoint", id="llm", classes="llm optional")
        with Horizontal(classes="controls"):
            yield Field(placeholder="painting: image path", id="image", suggester=PathSuggester())
            yield Button("Analyze", id="go", variant="primary")
        yield Static("", id="ckpt-info")
        yield Static("enter analyzes · esc cancels the explanation", id="status")
        with Horizontal(id="panels"):
            yield Static(id="picture")
            with Vertical(id="heads"):
                # the tables in one row, the maps in the next: a name that wraps never shifts one map alone
                with Horizontal(id="head-tables"):
                    for head in HEADS:
                        yield Static(id=f"head-{head}", classes="head")
                with Horizontal(id="head-cams"):
                    for head in HEADS:
                        yield Static(id=f"cam-{head}", classes="cam")
        with VerticalScroll(id="story") as story:
            story.border_title = "explanation"
            yield Static("", id="explanation")
            yield Static("", id="verdict")

    def scan(self) -> None:
        from tui.inference import LLM_KINDS, list_checkpoints

        super().scan()
        try:
            llms = list_checkpoints(self.ws, LLM_KINDS)
        except NcanvasError:
            return
        self.app.call_from_thread(self._fill_llm, llms)

    def known_choices(self) -> list[Any]:
        return [*self.choices, *self.llm_choices]

    def _fill_llm(self, llms: list[Any]) -> None:
        """The explainer picker, preselected as the Explain pane's: the best finished (or running) LLM."""
        from tui.inference import preferred

        self.llm_choices = llms
        select = self.query_one("#llm", Select)
        current = select.value
        select.set_options([(c.label, c.path) for c in llms])
        best = preferred(llms)
        if current in [c.path for c in llms]:
            select.value = current
        elif best is not None:
            select.value = best.path
        self.show_ckpt_info()

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
        self.busy = True
        self.query_one("#explanation", Static).update("")
        self.query_one("#verdict", Static).update("")
        self.run_analyze(ckpt, self.query_one("#image", Input).value, llm if isinstance(llm, str) else None,
                         self._cancel)

    def action_cancel(self) -> None:
        """``esc``: stop a running analysis; with none running, leave the text field."""
        if self.busy:
            self._cancel.set()
            self.busy = False
            self.set_status("cancelled")
        else:
            self.action_leave()

    @work(thread=True, exclusive=True, group="analyze")
    def run_analyze(self, ckpt: str, image: str, llm: str | None, cancel: threading.Event) -> None:
        from tui import inference

        try:
            res = inference.analyze(ckpt, image)
            picture = inference.render(res.image, 32, 16)
            heads: dict[str, Any] = {}
            cams: dict[str, Any] = {}
            for head, top in res.heads.items():
                heads[head] = head_table(head, top)
                if head in res.cams:  # which region drove this head's top class
                    cams[head] = inference.render(inference.blend(res.image, res.cams[head], 0.5), 24, 12)
        except Exception as e:  # noqa: BLE001 - a notification, never a crash
            self._post(cancel, self._ended, self.fail, e)
            return
        self._post(cancel, self._show, picture, heads, cams, res.prompt)
        self._post(cancel, self.post_message, ArtAnalyzed(ckpt, image, res.prompt))
        if llm is None:
            self._post(cancel, self._ended, self.set_status, "done (choose an LLM checkpoint for the explanation)")
            return
        text, result = "", None
        explanation = self.query_one("#explanation", Static)
        try:
            for ev in inference.explain_grounded(llm, res.prompt, self.settings, cancel, self.decode, self.tries):
                if cancel.is_set():
                    break
                if ev.kind == "done":
                    result = ev.result
                    continue
                text = "" if ev.kind == "restart" else text + ev.text  # a retry replaces the text shown
                self._post(cancel, explanation.update, Text(text))  # model output: never markup
            if result is not None and not cancel.is_set():
                marks = inference.verdict_marks(result, res.prompt)
                self._post(cancel, self._verdict, result, marks)
        except Exception as e:  # noqa: BLE001
            self._post(cancel, self._ended, self.fail, e)
            return
        self._post(cancel, self._ended, self.set_status, "cancelled" if cancel.is_set() else "done")

    def _verdict(self, result: Any, marks: list[tuple[bool, str]]) -> None:
        """The kept text (a retry may have shown another) and its ✓/✗ per fact."""
        self.query_one("#explanation", Static).update(Text(result.text))
        self.query_one("#verdict", Static).update(verdict_text(marks, result, self.tries))

    def _ended(self, fn: Any, *args: Any) -> None:
        self.busy = False
        fn(*args)

    def _post(self, cancel: threading.Event, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` on the UI thread unless a newer analysis has replaced this one (its worker thread
        cannot be interrupted and may still be finishing)."""
        def run() -> None:
            if cancel is self._cancel:
                fn(*args)

        self.app.call_from_thread(run)

    def _show(self, picture: Any, heads: dict[str, Any], cams: dict[str, Any], prompt: str) -> None:
        self.query_one("#picture", Static).update(picture)
        for head in HEADS:
            self.query_one(f"#head-{head}", Static).update(heads.get(head, ""))
            self.query_one(f"#cam-{head}", Static).update(cams.get(head, ""))
        self.prompt = prompt
        one_line = " · ".join(ln.strip() for ln in prompt.splitlines() if ln.strip())
        self.query_one("#story").border_title = f"explanation · {one_line}"
        self.set_status("explaining… (esc cancels)")
