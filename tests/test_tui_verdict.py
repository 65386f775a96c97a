"""The Explain and Analyze panes decode grounded by default and show the checker's verdict per fact (✓/✗) under
the text: the kept text replaces a retried one, a contradicted fact is shown with its ✗. The model is replaced by
scripted events (no torch): what is under test is the panes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from core.explain.check import Output, check
from core.paths import Workspace
from core.runrec import JobRecord, write_record
from tests.tui_pilot import wait_until
from tui.app import NcanvasApp

MONET = Output("Claude Monet", "Impressionism", "Landscape", (96.2, 94.8, 91.3))
GOOD = ("Claude Monet's dissolving outlines drive the artist head at 96.2%. Impressionism fits at 94.8%. The "
        "landscape label comes from a horizon line at 91.3%.")
BAD = ("Degas painted this. At 80.7%, the artist prediction is high. Impressionism fits at 94.8%. The landscape "
       "label comes from a horizon line at 91.3%.")


def script(*tries: str, kept: int | None = None, decode: str = "both"):
    """Events of a grounded decode that wrote ``tries`` and kept try ``kept`` (default: the last)."""
    kept_text = tries[(kept or len(tries)) - 1]
    events = []
    for i, text in enumerate(tries):
        if i:
            events.append(SimpleNamespace(kind="restart", text="", result=None))
        half = len(text) // 2  # streamed in two deltas
        events += [SimpleNamespace(kind="delta", text=text[:half], result=None),
                   SimpleNamespace(kind="delta", text=text[half:], result=None)]
    result = SimpleNamespace(text=kept_text, check=check(kept_text, MONET), tries=len(tries), decode=decode)
    return [*events, SimpleNamespace(kind="done", text="", result=result)]


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / "ws").ensure()
    for jid, kind in (("llm-0001", "llm"), ("artcnn-0001", "artcnn")):
        run = ws.run(jid).make()
        write_record(run.job_json, JobRecord(id=jid, kind=kind, state="finished", created=9.0))
        (run.ckpt_dir / "best_model.pt").write_bytes(b"")
    return ws


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """``inference.explain_grounded`` replaced: each call records its arguments and plays the next script."""
    from tui import inference

    seen: list[dict] = []
    scripts = iter([script(BAD, GOOD), script(BAD, decode="off")])

    def fake(ckpt, prompt, settings, cancel, decode=None, tries=4):
        seen.append({"prompt": prompt, "decode": decode, "tries": tries})
        yield from next(scripts)

    monkeypatch.setattr(inference, "explain_grounded", fake)
    return seen


def _plain(widget) -> str:
    return str(widget.render())


async def test_explain_pane_shows_a_mark_per_fact_and_the_kept_text(ws: Workspace, calls: list[dict]) -> None:
    app = NcanvasApp(ws, host="test", gpu_stats=lambda: [])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        pane = app.query_one("ExplainPane")
        await wait_until(pilot, lambda: isinstance(pane.query_one("#ckpt").value, str), what="checkpoint listed")
        pane.query_one("#prompt").value = "Claude Monet 96.2%, Impressionism 94.8%, landscape 91.3%"
        pane.query_one("#prompt").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: _plain(pane.query_one("#status")) == "done", what="generation")
        assert calls[0]["decode"] == "both" and calls[0]["tries"] == 4  # grounded by default
        assert pane.text("a") == GOOD, "the kept try replaces the one streamed before it"
        marks = _plain(pane.query_one("#marks-a"))
        assert "✓ artist Claude Monet" in marks and "✓ style Impressionism" in marks and "✓ 96.2%" in marks
        assert "✗" not in marks and "2 of 4 tries written" in marks

        pane.query_one("#decode").value = "off"
        await pilot.press("enter")
        await wait_until(pilot, lambda: "✗" in _plain(pane.query_one("#marks-a")), what="second verdict")
        assert calls[1]["decode"] == "off"
        marks = _plain(pane.query_one("#marks-a"))
        assert "✗ 80.7%" in marks, marks  # the wrong number is marked
        assert "✓ 94.8%" in marks and "Degas" in marks, "the other artist claimed is named in a ✗"

        pane.query_one("#decode").value = "sometimes"
        await pilot.press("enter")
        assert "decode must be one of both, resample, constrain, off" in _plain(pane.query_one("#status"))


async def test_analyze_pane_shows_the_verdict_under_the_explanation(ws: Workspace, calls: list[dict],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.text import Text

    from core.explain import format_prompt
    from tui import inference

    prompt = format_prompt("Claude Monet", 96.2, "Impressionism", 94.8, "Landscape", 91.3)
    heads = {"artist": [("Claude Monet", 0.962)], "style": [("Impressionism", 0.948)],
             "genre": [("Landscape", 0.913)]}
    monkeypatch.setattr(inference, "analyze", lambda ckpt, image: inference.Analysis(None, heads, {}, prompt))
    monkeypatch.setattr(inference, "render", lambda image, w, h=None: Text("▄" * 8))
    app = NcanvasApp(ws, host="test", gpu_stats=lambda: [])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        pane = app.query_one("AnalyzePane")
        await wait_until(pilot, lambda: isinstance(pane.query_one("#llm").value, str), what="LLM listed")
        pane.query_one("#image").value = "painting.png"
        pane.action_analyze()
        await wait_until(pilot, lambda: _plain(pane.query_one("#status")) == "done", what="analysis")
        assert calls[0]["prompt"] == prompt and calls[0]["decode"] == "both"
        assert _plain(pane.query_one("#explanation")) == GOOD
        verdict = _plain(pane.query_one("#verdict"))
        assert "✓ artist Claude Monet" in verdict and "✓ genre Landscape" in verdict and "✗" not in verdict

        pane.action_analyze()  # the second script: a contradicted number stays marked
        await wait_until(pilot, lambda: "✗" in _plain(pane.query_one("#verdict")), what="second verdict")
        assert "✗ 80.7%" in _plain(pane.query_one("#verdict"))
