"""The Classify pane: a checkpoint, an image (path with completion, ``sample:N`` or ``mnist:N``), top-k bars."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Input, Select, Static

from tui.messages import Classified
from tui.panes.base import InferencePane, PathSuggester
from tui.widgets.field import Field


def topk_table(top: list[tuple[str, float]], truth: str | None, width: int = 30) -> Table:
    """Classes with probability bars ``width`` cells long (none for 0), best first; the true class (when known) is
    marked. A long name wraps onto a second line rather than losing its end."""
    table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
    table.add_column(overflow="fold")
    if width:
        table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, justify="right")
    for name, p in top:
        mark = " ✓" if truth is not None and name == truth else ""
        bar = [Text("█" * round(p * width), style="green")] if width else []
        table.add_row(Text(name + mark, style="bold" if mark else ""), *bar, f"{p:6.1%}")
    return table


class ClassifyPane(InferencePane):
    pane_id = "classify"
    title = "Classify"
    kinds = ("cnn",)

    BINDINGS = [Binding("ctrl+r", "classify", "Classify",
                        tooltip="Classify the image with the checkpoint (enter in the image field too)"),
                Binding("i", "invert", "Invert", tooltip="Invert the image (dark on light <-> light on dark) and "
                        "classify again")]

    DEFAULT_CSS = """
    ClassifyPane #result { height: 1fr; }
    ClassifyPane #image-art { width: auto; min-width: 20; padding: 1 2 0 0; }
    ClassifyPane #topk { width: 1fr; padding: 1 0 0 0; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal(classes="controls"):
            yield Select([], prompt="checkpoint", id="ckpt", classes="ckpt")
            yield Field("sample:0", placeholder="image path, sample:N or mnist:N", id="image",
                        suggester=PathSuggester())
            yield Button("Classify", id="go", variant="primary")
        yield Static("", id="ckpt-info")
        yield Static("enter classifies (ctrl+r again); sample:N uses the checkpoint's stored test images", id="status")
        with Horizontal(id="result"):
            yield Static(id="image-art")
            yield Static(id="topk")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invert = False  # i: classify the negative of the image

    def dataset_hint(self) -> str | None:
        from tui.inference import spec_dataset

        return spec_dataset(self.query_one("#image", Input).value)

    @on(Input.Changed, "#image")
    def _image_changed(self) -> None:
        self.invert = False  # a new image starts the right way round

    def action_invert(self) -> None:
        self.invert = not self.invert
        self.action_classify()

    @on(Input.Submitted, "#image")
    @on(Button.Pressed, "#go")
    def action_classify(self) -> None:
        try:
            ckpt = self.checkpoint()
        except Exception as e:  # noqa: BLE001
            self.fail(e)
            return
        self.set_status("classifying…")
        self.run_classify(ckpt, self.query_one("#image", Input).value, self.invert)

    @work(thread=True, exclusive=True, group="classify")
    def run_classify(self, ckpt: str, image: str, invert: bool) -> None:
        from tui import inference

        try:
            res = inference.classify(ckpt, image, invert=invert)
            art = inference.render(res.image, 40, 20)
        except Exception as e:  # noqa: BLE001 - bad checkpoint or image: a notification, not a crash
            self.app.call_from_thread(self.fail, e)
            return
        self.app.call_from_thread(self._show, res, art, ckpt, image, invert)

    def _show(self, res: Any, art: Any, ckpt: str, image: str, invert: bool) -> None:
        self.query_one("#image-art", Static).update(art)
        self.query_one("#topk", Static).update(topk_table(res.top, res.truth))
        truth = f" · true class {res.truth}" if res.truth is not None else ""
        note = f" · note: {res.note}" if res.note else ""
        self.set_status(f"{res.description}: {res.top[0][0]} ({res.top[0][1]:.1%}){truth}{note}",
                        warning=bool(res.note))
        self.post_message(Classified(ckpt, image, res.top, invert))
