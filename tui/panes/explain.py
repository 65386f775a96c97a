"""The Explain pane: a prompt (from the classification, or typed) streamed through one or two LLM checkpoints,
decoded grounded by default, with the checker's ✓/✗ per fact under each text."""

from __future__ import annotations

import threading
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Select, Static

from core.errors import NcanvasError
from core.sampling_defaults import DECODES, DEFAULT_DECODE, DEFAULT_TRIES, EXPLAIN
from tui.messages import ArtAnalyzed, Classified
from tui.panes.base import InferencePane
from tui.widgets.field import Field
from tui.widgets.verdict import verdict_text


def _float(value: str, name: str, lo: float, hi: float) -> float:
    try:
        v = float(value)
    except ValueError:
        raise NcanvasError(f"{name} must be a number; got {value!r}") from None
    if not lo <= v <= hi:
        raise NcanvasError(f"{name} must be in [{lo}, {hi}]; got {v}")
    return v


def _short(path: str) -> str:
    """``llm-0001/best_model.pt`` from a checkpoint path: which model wrote which column."""
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


class ExplainPane(InferencePane):
    """Tokens arrive in worker threads into buffers; a 10 Hz timer moves them to the screen; ``esc`` cancels.
    A grounded decode's retry clears its column (``_reset``); when it ends, the kept text and its verdict are
    shown."""

    pane_id = "explain"
    title = "Explain"
    kinds = ("llm", "gpt2")
    DEFAULT_CLASSES = "uses-classification"

    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="Cancel the generation; with none running, leave the "
                        "text field"),
                Binding("ctrl+r", "generate", "Generate", tooltip="Generate the explanation (enter in a field too)")]

    DEFAULT_CSS = """
    ExplainPane #settings { height: 1; margin: 1 0 0 0; }
    ExplainPane #settings > Input { width: 7; height: 1; border: none; padding: 0 1; }
    ExplainPane #settings > Static { width: auto; padding: 0 0 0 1; color: $text-muted; }
    ExplainPane #settings > #decode { width: 11; }
    ExplainPane .marks { margin: 1 0 0 0; }
    ExplainPane #outputs { height: 1fr; }
    ExplainPane .out { width: 1fr; border: round $panel; padding: 0 1; }
    ExplainPane #scroll-b.-off { display: none; }
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cancel = threading.Event()
        self._buffers: dict[str, list[str]] = {"a": [], "b": []}
        self._lock = threading.Lock()
        self._generating = 0  # generations streaming now (not Textual's _running: that is the message pump's)
        self._texts: dict[str, str] = {"a": "", "b": ""}
        self._reset: set[str] = set()  # columns whose retry started: cleared at the next flush

    def compose(self) -> ComposeResult:
        with Horizontal(classes="controls"):
            yield Select([], prompt="LLM checkpoint", id="ckpt", classes="ckpt")
            yield Select([], prompt="compare with (optional)", id="ckpt-b", classes="ckpt optional")
        yield Static("", id="ckpt-info")
        with Horizontal(classes="controls"):
            yield Field(placeholder="artist, style, genre (e.g. Claude Monet 96%, Impressionism 94%, landscape)",
                        id="prompt")
            yield Button("Generate", id="go", variant="primary")
        d = EXPLAIN  # `ncanvas explain`'s defaults
        with Horizontal(id="settings"):
            yield Static("temp")
            yield Field(f"{d.temperature:g}", id="temperature")
            yield Static("top-k")
            yield Field(str(d.top_k), id="top_k", type="integer")
            yield Static("top-p")
            yield Field(f"{d.top_p:g}", id="top_p")
            yield Static("rep-pen")
            yield Field(f"{d.repetition_penalty:g}", id="repetition_penalty")
            yield Static("max-new")
            yield Field(str(d.max_new_tokens), id="max_new_tokens", type="integer")
            yield Static("seed")
            yield Field("" if d.seed is None else str(d.seed), id="seed", type="integer", placeholder="any")
            yield Static("decode")
            yield Field(DEFAULT_DECODE, id="decode", placeholder=DEFAULT_DECODE)
            yield Static("tries")
            yield Field(str(DEFAULT_TRIES), id="tries", type="integer")
        yield Static("enter generates · esc cancels", id="status")
        with Horizontal(id="outputs"):
            with VerticalScroll(id="scroll-a", classes="out"):
                yield Static("", id="out-a")
                yield Static("", id="marks-a", classes="marks")
            with VerticalScroll(id="scroll-b", classes="out -off"):
                yield Static("", id="out-b")
                yield Static("", id="marks-b", classes="marks")

    def on_mount(self) -> None:
        self.set_interval(0.1, self._flush)

    def use_classification(self, event: Classified) -> None:
        """A digit classification (the Classify pane) is no prompt the explainers were trained on: say so."""
        if event.top:
            name, p = event.top[0]
            self.set_status(f"classified as {name} ({p:.0%}); the explainers read art classifications "
                            "(artist, style, genre): analyze a painting in pane 5, or type one")

    def use_analysis(self, event: ArtAnalyzed) -> None:
        """The Analyze pane's top-1 triple becomes the prompt, confidences included (set by the app)."""
        from tui.inference import prompt_line

        try:
            self.query_one("#prompt", Input).value = prompt_line(event.prompt)
        except NcanvasError as e:
            self.fail(e)
            return
        self.set_status(f"prompt from {_short(event.checkpoint)}: enter generates")

    def settings(self) -> Any:
        from tui.inference import GenSettings

        def number(widget_id: str, name: str, lo: float, hi: float, default: float) -> float:
            return _float(self.query_one(f"#{widget_id}", Input).value.strip() or str(default), name, lo, hi)

        d = EXPLAIN  # an emptied field means the default
        seed = self.query_one("#seed", Input).value.strip()
        return GenSettings(temperature=number("temperature", "temperature", 0.0, 10.0, d.temperature),
                           top_k=int(number("top_k", "top-k", 0, 100_000, d.top_k)),
                           top_p=number("top_p", "top-p", 0.0, 1.0, d.top_p),
                           repetition_penalty=number("repetition_penalty", "repetition penalty", 0.1, 10.0,
                                                     d.repetition_penalty),
                           max_new_tokens=int(number("max_new_tokens", "max tokens", 1, 4096, d.max_new_tokens)),
                           seed=int(_float(seed, "seed", 0, 2**31)) if seed else d.seed)

    def decoding(self) -> tuple[str, int]:
        """The grounded decode (``both``, ``resample``, ``constrain``, ``off``) and its most tries."""
        decode = self.query_one("#decode", Input).value.strip().lower() or DEFAULT_DECODE
        if decode not in DECODES:
            raise NcanvasError(f"decode must be one of {', '.join(DECODES)}; got {decode!r}")
        tries = self.query_one("#tries", Input).value.strip()
        return decode, int(_float(tries, "tries", 1, 32)) if tries else DEFAULT_TRIES

    @on(Input.Submitted)
    @on(Button.Pressed, "#go")
    def action_generate(self) -> None:
        try:
            ckpt = self.checkpoint()
            settings = self.settings()
            decoding = self.decoding()
            prompt = self.query_one("#prompt", Input).value.strip()
            if not prompt:
                raise NcanvasError("type artist, style, genre (or analyze a painting in pane 5 first)")
            from tui.inference import build_prompt

            prompt = build_prompt(prompt)
        except NcanvasError as e:
            self.fail(e)
            return
        self._stop()
        with self._lock:  # a new run: tokens still coming from the old one are dropped (see generate)
            self._cancel = threading.Event()
            for buf in self._buffers.values():
                buf.clear()
            self._reset.clear()
        other = self.query_one("#ckpt-b", Select).value
        side = isinstance(other, str)
        self.query_one("#scroll-b").set_class(not side, "-off")
        self.query_one("#scroll-a").border_title = _short(ckpt)
        self.query_one("#scroll-b").border_title = _short(other) if isinstance(other, str) else ""
        for key in ("a", "b"):
            self.query_one(f"#out-{key}", Static).update("")
            self.query_one(f"#marks-{key}", Static).update("")
            self._texts[key] = ""
        self.set_status("generating… (esc cancels)")
        self._generating = 1 + side
        self.generate("a", ckpt, prompt, settings, self._cancel, decoding)
        if side:
            self.generate("b", other, prompt, settings, self._cancel, decoding)

    def action_cancel(self) -> None:
        """``esc``: stop a running generation; with none running, leave the text field."""
        if self._generating:
            self._stop()
        else:
            self.action_leave()

    def _stop(self) -> None:
        if self._generating:
            self._cancel.set()
            self.set_status("cancelled")

    @work(thread=True, group="explain")
    def generate(self, key: str, ckpt: str, prompt: str, settings: Any, cancel: threading.Event,
                 decoding: tuple[str, int] = (DEFAULT_DECODE, DEFAULT_TRIES)) -> None:
        from tui import inference

        decode, tries = decoding
        result = None
        try:
            for ev in inference.explain_grounded(ckpt, prompt, settings, cancel, decode, tries):
                with self._lock:
                    if cancel.is_set() or cancel is not self._cancel:
                        break
                    if ev.kind == "delta":
                        self._buffers[key].append(ev.text)
                    elif ev.kind == "restart":  # a retry: what it replaces goes, its own text streams in
                        self._buffers[key].clear()
                        self._reset.add(key)
                    elif ev.kind == "done":
                        result = ev.result
            if result is not None:
                marks = inference.verdict_marks(result, prompt)
                self.app.call_from_thread(self._verdict, key, cancel, result, marks, tries)
        except Exception as e:  # noqa: BLE001 - a notification, never a crash
            self.app.call_from_thread(self._fail_if_current, cancel, e)
        finally:
            self.app.call_from_thread(self._done, cancel)

    def _fail_if_current(self, cancel: threading.Event, error: Exception) -> None:
        if cancel is self._cancel:  # a superseded run's late error must not land on the new run
            self.fail(error)

    def _flush(self) -> None:
        with self._lock:
            pending = {k: "".join(v) for k, v in self._buffers.items() if v}
            for v in self._buffers.values():
                v.clear()
            reset, self._reset = self._reset, set()
        for key in reset:
            self._texts[key] = ""
            pending.setdefault(key, "")
        for key, text in pending.items():
            self._texts[key] = self._texts.get(key, "") + text
            self.query_one(f"#out-{key}", Static).update(Text(self._texts[key]))  # model output: never markup
            self.query_one(f"#scroll-{key}").scroll_end(animate=False)

    def _verdict(self, key: str, cancel: threading.Event, result: Any, marks: list[tuple[bool, str]],
                 tries: int) -> None:
        """The kept text (a retry may have shown another) and its ✓/✗ per fact."""
        if cancel is not self._cancel or cancel.is_set():
            return
        self._flush()
        self._texts[key] = result.text
        self.query_one(f"#out-{key}", Static).update(Text(result.text))  # model output: never markup
        self.query_one(f"#marks-{key}", Static).update(verdict_text(marks, result, tries))
        self.query_one(f"#scroll-{key}").scroll_end(animate=False)

    def _done(self, cancel: threading.Event) -> None:
        if cancel is not self._cancel:  # an older, cancelled run: the current one keeps its count and status
            return
        self._generating = max(0, self._generating - 1)
        if not self._generating and not self.query_one("#status", Static).has_class("-error"):
            self._flush()
            self.set_status("cancelled" if cancel.is_set() else "done")

    def text(self, key: str = "a") -> str:
        return self._texts.get(key, "")
