"""The Grad-CAM pane: where the network looks. Keys change target class, layer, method, overlay alpha, view."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Input, Select, Static
from textual.widgets._select import InvalidSelectValueError

from tui.inference import CAM_METHODS, VIEWS
from tui.messages import Classified
from tui.panes.base import InferencePane, PathSuggester
from tui.widgets.field import Field


class GradCamPane(InferencePane):
    """Attributes: ``target`` (None: the predicted class), ``layer`` (None: the default), ``method``, ``alpha``,
    ``view``. Each change recomputes in a worker (exclusive: fast key repeats drop stale work)."""

    pane_id = "gradcam"
    title = "Grad-CAM"
    kinds = ("cnn",)
    DEFAULT_CLASSES = "uses-classification"

    BINDINGS = [
        Binding("t", "target(1)", "Class+", tooltip="Explain the next class"),
        Binding("T", "target(-1)", "Class-", show=False, tooltip="Explain the previous class"),
        Binding("y", "layer(1)", "Layer+", tooltip="Explain at the next conv layer"),
        Binding("Y", "layer(-1)", "Layer-", show=False, tooltip="Explain at the previous conv layer"),
        Binding("m", "method", "Method", tooltip="Next method: Grad-CAM, Grad-CAM++, guided backprop, guided "
                "Grad-CAM"),
        Binding("a", "alpha(0.1)", "Alpha+", tooltip="More heat-map opacity"),
        Binding("A", "alpha(-0.1)", "Alpha-", show=False, tooltip="Less heat-map opacity"),
        Binding("v", "view", "View", tooltip="Next view: overlay, heat map, filters, feature maps, activation "
                "maximisation"),
        Binding("i", "invert", "Invert", show=False, tooltip="Invert the image (dark on light <-> light on dark)"),
        Binding("ctrl+r", "run", "Run", tooltip="Run on the image (enter in the image field too)"),
    ]

    DEFAULT_CSS = """
    GradCamPane #pictures { height: 1fr; }
    GradCamPane #input-art { width: auto; min-width: 20; padding: 1 2 0 0; }
    GradCamPane #view-art { width: 1fr; padding: 1 0 0 0; }
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.target: int | None = None
        self.cam_layer: str | None = None
        self.method = CAM_METHODS[0]
        self.alpha = 0.5
        self.view = VIEWS[0]
        self.invert = False
        self.result: Any = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="controls"):
            yield Select([], prompt="checkpoint", id="ckpt", classes="ckpt")
            yield Field("sample:0", placeholder="image path, sample:N or mnist:N", id="image",
                        suggester=PathSuggester())
            yield Button("Run", id="go", variant="primary")
        yield Static("", id="ckpt-info")
        yield Static("enter runs · t/T class · y/Y layer · m method · a/A alpha · v view", id="status")
        with Horizontal(id="pictures"):
            yield Static(id="input-art")
            yield Static(id="view-art")

    def use_classification(self, event: Classified) -> None:
        """Follow the Classify pane: same checkpoint and image, inverted if it was (set by the app)."""
        self.query_one("#image", Input).value = event.image
        self.invert = event.invert
        try:
            self.query_one("#ckpt", Select).value = event.checkpoint
        except InvalidSelectValueError:
            pass  # not in this pane's list (yet): keep the current choice

    @on(Input.Submitted, "#image")
    @on(Button.Pressed, "#go")
    def action_run(self) -> None:
        try:
            ckpt = self.checkpoint()
        except Exception as e:  # noqa: BLE001
            self.fail(e)
            return
        self.set_status(f"{self.method} · {self.view}…")
        if isinstance(self.app.focused, Input):
            self.focus()  # so t/y/m/a/v act on the picture instead of typing
        self.compute(ckpt, self.query_one("#image", Input).value, self.method, self.target, self.cam_layer,
                     self.alpha, self.view, self.invert)

    def _n_classes(self) -> int:
        return len(self.result.classes) if self.result is not None else 0

    def action_target(self, step: int) -> None:
        n = self._n_classes()
        if n:
            base = self.result.target if self.target is None else self.target
            self.target = (base + step) % n
            self.action_run()

    def action_layer(self, step: int) -> None:
        if self.result is not None and self.result.layers:
            layers = self.result.layers
            current = self.cam_layer or self.result.layer or layers[-1]
            i = layers.index(current) if current in layers else len(layers) - 1
            self.cam_layer = layers[(i + step) % len(layers)]
            self.action_run()

    def action_method(self) -> None:
        self.method = CAM_METHODS[(CAM_METHODS.index(self.method) + 1) % len(CAM_METHODS)]
        self.action_run()

    def action_alpha(self, step: float) -> None:
        self.alpha = round(min(1.0, max(0.0, self.alpha + step)), 2)
        self.action_run()

    def action_view(self) -> None:
        self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self.action_run()

    def action_invert(self) -> None:
        self.invert = not self.invert
        self.action_run()

    def dataset_hint(self) -> str | None:
        from tui.inference import spec_dataset

        return spec_dataset(self.query_one("#image", Input).value)

    @work(thread=True, exclusive=True, group="gradcam")
    def compute(self, ckpt: str, image: str, method: str, target: int | None, layer: str | None, alpha: float,
                view: str, invert: bool) -> None:
        from tui import inference

        try:
            res = inference.gradcam(ckpt, image, method, target, layer, invert)
            caption = ""
            if view in ("overlay", "heatmap") and res.warning:
                picture = res.image  # an empty or flat map would only paint noise: the image, and the reason
            elif view == "overlay":
                picture = inference.blend(res.image, res.heat, alpha)
            elif view == "heatmap":
                picture = inference.heatmap(res.heat)
            else:
                picture, caption = inference.view_image(ckpt, image, view, layer or res.layer, invert=invert)
            width = max(20, (self.size.width - 30))
            rows = max(8, self.size.height - 6)
            art_in = inference.render(res.image, 24, rows)
            art_view = inference.render(picture, width, rows)
        except Exception as e:  # noqa: BLE001 - a notification, never a crash
            self.app.call_from_thread(self.fail, e)
            return
        self.app.call_from_thread(self._show, res, art_in, art_view, alpha, view, caption)

    def _show(self, res: Any, art_in: Any, art_view: Any, alpha: float, view: str, caption: str = "") -> None:
        self.result = res
        self.query_one("#input-art", Static).update(art_in)
        self.query_one("#view-art", Static).update(art_view)
        name = res.classes[res.target] if res.target < len(res.classes) else str(res.target)
        pred = res.classes[res.predicted] if res.predicted < len(res.classes) else str(res.predicted)
        line = (f"class {name} ({res.prob:.1%}; predicted {pred}) · layer {res.layer or '-'} · "
                f"{res.method} · alpha {alpha:.1f} · view {view}" + (f" ({caption})" if caption else ""))
        warning = res.warning if view in ("overlay", "heatmap") else None
        notes = [n for n in (warning, res.note) if n]
        self.set_status(line + "".join(f"\n{n}" for n in notes), warning=bool(notes))
