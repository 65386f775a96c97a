"""The new-job form (``n``): kind, that kind's options (from its config dataclass), GPU; validated before start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static, Switch

from core.errors import NcanvasError
from jobs.config import LOOP_OPTIONS, OptionSpec, build_config, option_specs
from jobs.kinds import KINDS, kind_config

# the fields users change most, first; then the kind's own options, then the training loop's (declaration order)
FIRST = ("model", "arch", "dataset", "epochs", "lr", "batch_size")


@dataclass(frozen=True)
class NewJobRequest:
    kind: str
    config: dict[str, Any]
    gpu: str


def ordered(specs: list[OptionSpec]) -> list[OptionSpec]:
    rank = {name: i for i, name in enumerate(FIRST)}
    return sorted(specs, key=lambda s: rank.get(s.name, len(FIRST) + (s.name in LOOP_OPTIONS)))


def field_widget(spec: OptionSpec) -> Any:
    """An input for one option: Select for choices, Switch for bools, Input otherwise."""
    wid = f"opt-{spec.name}"
    if spec.choices:
        return Select([(c, c) for c in spec.choices], value=spec.default, allow_blank=False, id=wid)
    if spec.type is bool:
        return Switch(value=bool(spec.default), id=wid)
    kind: Literal["integer", "number", "text"] = "integer" if spec.type is int else "number" if spec.type is float else "text"
    return Input("" if spec.default is None else str(spec.default), type=kind, id=wid, valid_empty=True)


def set_value(widget: Any, value: Any) -> None:
    """Put an option's value into its field (the inverse of :func:`read_value`)."""
    if isinstance(widget, Input):
        widget.value = "" if value is None else str(value)
    elif isinstance(widget, Switch):
        widget.value = bool(value)
    else:
        widget.value = value


def read_value(widget: Any) -> Any:
    value = widget.value
    if isinstance(widget, Input):
        return value.strip() or None
    return value


class NewJobScreen(ModalScreen[NewJobRequest | None]):
    """Dismisses with a validated :class:`NewJobRequest`, or None on cancel."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "submit", "Start")]

    DEFAULT_CSS = """
    NewJobScreen { align: center middle; }
    NewJobScreen > Vertical {
        width: 84; max-width: 100%; height: 90%; border: thick $accent; background: $surface; padding: 0 1;
    }
    NewJobScreen #fields { height: 1fr; }
    NewJobScreen .row { height: auto; }
    NewJobScreen .row > Label { width: 18; padding: 1 1 0 0; }
    NewJobScreen .row > Input, NewJobScreen .row > Select { width: 1fr; }
    NewJobScreen .help { color: $text-muted; padding: 0 0 0 18; height: auto; }
    NewJobScreen #error { color: $error; height: auto; }
    NewJobScreen #buttons { height: 3; align: right middle; }
    """

    def __init__(self, kind: str | None = None) -> None:
        super().__init__()
        self.kinds = list(KINDS)
        self.kind = kind if kind in self.kinds else (self.kinds[0] if self.kinds else "")
        self.specs: list[OptionSpec] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]New job[/b]  (enter or ctrl+s starts, esc cancels)")
            with Horizontal(classes="row"):
                yield Label("kind")
                yield Select([(f"{k} · {KINDS[k].description}", k) for k in self.kinds], value=self.kind,
                             allow_blank=False, id="kind")
            with Horizontal(classes="row"):
                yield Label("gpu")
                yield Input("auto", id="gpu", placeholder="auto, cpu or an index like 0")
            yield VerticalScroll(id="fields")
            yield Static("", id="error")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Start", variant="success", id="start")

    async def on_mount(self) -> None:
        await self._show_kind(self.kind)

    async def _show_kind(self, kind: str) -> None:
        self.kind = kind
        box = self.query_one("#fields", VerticalScroll)
        await box.remove_children()
        try:
            self.specs = ordered(option_specs(kind_config(kind)))
        except NcanvasError as e:
            self.specs = []
            self.query_one("#error", Static).update(str(e))
            return
        rows: list[Widget] = []
        for spec in self.specs:
            rows.append(Horizontal(Label(spec.name), field_widget(spec), classes="row"))
            rows.append(Static(spec.help, classes="help"))
        await box.mount_all(rows)

    @on(Select.Changed, "#kind")
    async def _kind_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.kind:
            self.query_one("#error", Static).update("")
            await self._show_kind(event.value)

    @on(Select.Changed, "#opt-preset")
    def _preset_changed(self, event: Select.Changed) -> None:
        """A preset fills the fields it sets (``none``: their defaults back); fields edited afterwards win, as
        options given on the command line do."""
        presets: dict[str, dict[str, Any]] = getattr(kind_config(self.kind), "PRESETS", {})
        chosen = presets.get(str(event.value), {})
        touched = {name for p in presets.values() for name in p}
        for spec in self.specs:
            if spec.name in touched:
                set_value(self.query_one(f"#opt-{spec.name}"), chosen.get(spec.name, spec.default))

    def values(self) -> dict[str, Any]:
        """The form's option values (strings from inputs are coerced by ``build_config``)."""
        out = {}
        for spec in self.specs:
            value = read_value(self.query_one(f"#opt-{spec.name}"))
            if value is not None:
                out[spec.name] = value
        return out

    def validate(self) -> NewJobRequest:
        """Build and validate the config; raises :class:`NcanvasError` with one line."""
        values = self.values()
        cfg = build_config(kind_config(self.kind), values)
        gpu = self.query_one("#gpu", Input).value.strip().lower() or "auto"
        if gpu not in ("auto", "cpu") and not gpu.replace(",", "").isdigit():
            raise NcanvasError(f"gpu must be auto, cpu or an index; got {gpu!r}")
        from jobs.config import to_dict

        return NewJobRequest(self.kind, to_dict(cfg), gpu)

    def action_submit(self) -> None:
        try:
            request = self.validate()
        except NcanvasError as e:
            self.query_one("#error", Static).update(f"✗ {e}")
            return
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_submit()
        else:
            self.action_cancel()
