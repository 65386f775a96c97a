"""The Explain and Analyze panes on a tiny LLM and a tiny art CNN trained in the test: streaming, side by side,
esc cancels, and the whole chain painting -> CNN -> Grad-CAM -> explanation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from core.paths import Workspace
from tests.conftest import subprocess_env
from tests.tui_pilot import wait_until
from tui.app import NcanvasApp
from tui.cli import app as cli_app

pytest.importorskip("core.llm.generate", reason="the LLM explainer is not in this build")

TRAIN = """
import sys
from core.paths import Workspace
from jobs import supervisor
ws = Workspace(sys.argv[1]).ensure()
cfg = {"tokenizer": "bpe", "n_pairs": 200, "epochs": 1, "batch_size": 16, "eval_max": 16, "warmup_steps": 2,
       "lr": 3e-3, "n_layer": 1, "d_model": 32, "n_head": 2, "n_kv_head": 1, "d_ff": 64, "block_size": 320,
       "checkpoint_every": 0}
art = {"synthetic_n": 40, "epochs": 1, "image_size": 32, "batch_size": 16}
jobs = [supervisor.start_job(ws, "llm", cfg, gpu="cpu"), supervisor.start_job(ws, "artcnn", art, gpu="cpu")]
for rec, proc in jobs:
    proc.wait()
print(" ".join(supervisor.job_status(ws, rec.id).state for rec, _ in jobs))
"""


@pytest.fixture(scope="module")
def llm_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("llmws")
    out = subprocess.run([sys.executable, "-c", TRAIN, str(root)], capture_output=True, text=True,
                         env=subprocess_env(), timeout=300)
    assert out.stdout.strip().endswith("finished finished"), out.stdout + out.stderr
    return Workspace(root)


def _status(pane) -> str:
    return str(pane.query_one("#status").render())


@pytest.mark.slow
async def test_explanation_streams_side_by_side_and_cancels(llm_ws: Workspace, monkeypatch) -> None:
    from core.llm.generate import load_explainer
    from core.llm.sampling import SamplingSettings
    from tui.inference import build_prompt

    app = NcanvasApp(llm_ws, host="test", gpu_stats=lambda: [])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        pane = app.query_one("ExplainPane")
        best = str(llm_ws.run("llm-0001").best)
        await wait_until(pilot, lambda: pane.query_one("#ckpt").value == best, what="checkpoint listed")
        pane.query_one("#ckpt-b").value = str(llm_ws.run("llm-0001").latest)
        pane.query_one("#prompt").value = "Claude Monet, Impressionism, landscape"
        pane.query_one("#temperature").value = "0"
        pane.query_one("#max_new_tokens").value = "24"
        pane.query_one("#prompt").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: _status(pane) == "done", timeout=120, what="generation")
        text = pane.text("a")
        assert text and pane.text("b"), "both sides streamed"
        from core.llm.grounded import grounded_explain

        expected = grounded_explain(load_explainer(best), build_prompt("Claude Monet, Impressionism, landscape"),
                                    SamplingSettings(max_new_tokens=24, temperature=0)).text
        assert text == expected, "the pane shows exactly the text the grounded decode keeps"
        assert "✓" in str(pane.query_one("#marks-a").render()) or "✗" in str(pane.query_one("#marks-a").render())

        import time

        from tui import inference

        real = inference.explain_grounded

        def slowed(*args, **kwargs):  # the real model, slowed so that esc lands mid-stream on any machine
            for event in real(*args, **kwargs):
                time.sleep(0.05)
                yield event

        monkeypatch.setattr(inference, "explain_grounded", slowed)
        pane.query_one("#max_new_tokens").value = "200"
        pane.query_one("#ckpt-b").clear()
        pane.query_one("#prompt").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: pane._generating, what=f"generation started ({_status(pane)})")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not pane._generating, timeout=60, what="generation ended")
        assert _status(pane) == "cancelled"
        assert len(pane.text("a")) < len(text) * 4, "stopped early"

        # generate again while a run streams: nothing of the old run leaks in, and the count/esc stay right
        assert not pane.query_one("#scroll-b").display, "one column without a comparison"
        pane.query_one("#max_new_tokens").value = "24"
        await pilot.press("enter")
        await wait_until(pilot, lambda: pane.text("a"), what="first run streaming")
        await pilot.press("enter")
        await wait_until(pilot, lambda: _status(pane) == "done", timeout=120, what="second run")
        assert pane.text("a") == expected and not pane._generating

        pane.query_one("#prompt").value = "Claude Monet, Impresionism, landscape"
        await pilot.press("enter")
        await wait_until(pilot, lambda: pane.query_one("#status").has_class("-error"), what="unknown style")
        assert "did you mean Impressionism" in _status(pane)

        pane.query_one("#temperature").value = "hot"
        await pilot.press("enter")
        assert "temperature must be a number" in _status(pane)


@pytest.mark.slow
async def test_analyze_streams_the_explanation_of_a_painting(llm_ws: Workspace, monkeypatch) -> None:
    painting = next((llm_ws.run("artcnn-0001").ckpt_dir / "synthetic-art" / "images").glob("*.png"))
    app = NcanvasApp(llm_ws, host="test", gpu_stats=lambda: [])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        pane = app.query_one("AnalyzePane")
        await wait_until(pilot, lambda: pane.query_one("#ckpt").value == str(llm_ws.run("artcnn-0001").best),
                         what="art checkpoint listed")
        pane.query_one("#image").value = "/no/such/painting.png"
        pane.action_analyze()
        await wait_until(pilot, lambda: pane.query_one("#status").has_class("-error"), timeout=60, what="error")
        assert "image not found" in _status(pane)
        pane.query_one("#llm").value = str(llm_ws.run("llm-0001").best)
        pane.query_one("#image").value = str(painting)
        pane.query_one("#image").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: _status(pane) in ("done", "cancelled") or pane.query_one(
            "#status").has_class("-error"), timeout=120, what="analysis and explanation")
        assert _status(pane) == "done"
        assert pane.prompt.startswith("CNN Classification Results:"), "the dataset's prompt format"
        shown = str(pane.query_one("#explanation").render())
        assert shown.strip(), "the explanation streamed in"
        for head in ("artist", "style", "genre"):
            assert head in str(pane.query_one(f"#head-{head}").render())

        import time

        from tui import inference

        real = inference.explain_grounded

        def slowed(*args, **kwargs):  # the real model, slowed so that esc lands mid-stream on any machine
            for event in real(*args, **kwargs):
                time.sleep(0.05)
                yield event

        monkeypatch.setattr(inference, "explain_grounded", slowed)
        await pilot.press("enter")  # a new analysis (focus is still in the image field) ...
        await wait_until(pilot, lambda: _status(pane).startswith("explaining"), what="second analysis streaming")
        await wait_until(pilot, lambda: str(pane.query_one("#explanation").render()).strip(), what="tokens")
        await pilot.press("escape")  # ... cancelled mid-stream
        await wait_until(pilot, lambda: _status(pane) == "cancelled", timeout=60, what="cancelled")
        partial = str(pane.query_one("#explanation").render())
        assert len(partial) < len(shown), "stopped early"
        await pilot.pause(0.3)
        assert str(pane.query_one("#explanation").render()) == partial, "nothing more streams in after esc"

        # the painting's classification is the Explain pane's prompt too, confidences and all
        from tui.inference import build_prompt

        await pilot.press("4")
        typed = app.query_one("ExplainPane").query_one("#prompt").value
        assert typed.count("%") == 3 and build_prompt(typed) == pane.prompt
    # the headless command tells the same story: same prompt, same sampling defaults, same text
    res = CliRunner().invoke(cli_app, ["--home", str(llm_ws.root), "analyze", str(painting), "--cnn", "artcnn-0001",
                                       "--llm", "llm-0001", "--json", "--out", str(llm_ws.root / "cams")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["prompt"] == pane.prompt
    assert [e["text"] for e in out["explanations"]] == [shown]


def test_typed_prompts_become_the_dataset_format() -> None:
    from core.errors import NcanvasError
    from core.explain import format_prompt
    from tui.inference import build_prompt, prompt_line

    exact = format_prompt("Claude Monet", 96.2, "Impressionism", 94.8, "Landscape", 91.3)
    assert build_prompt("claude monet 96.2%, Impressionism (94.8%), landscape 91.3") == exact
    assert build_prompt(prompt_line(exact)) == exact, "one line and back"
    assert build_prompt(exact) == exact, "a full prompt is used as it is"
    assert build_prompt("Claude Monet, Impressionism, landscape") == format_prompt(
        "Claude Monet", 90.0, "Impressionism", 90.0, "Landscape", 90.0)
    for bad, why in (("Explain why this is a 7", "type artist, style, genre"),
                     ("Artist: Claude Monet (96.2% confidence)", "type artist, style, genre"),
                     ("Claude Monet 120%, Impressionism, landscape", "percentage in [0, 100]"),
                     ("Claude Monet, Impresionism, landscape", "did you mean Impressionism")):
        with pytest.raises(NcanvasError, match=why.replace("[", r"\[").replace("]", r"\]")):
            build_prompt(bad)
    with pytest.raises(NcanvasError, match="not an art classification prompt"):
        prompt_line("hello")


async def test_a_finished_generation_leaves_the_pane_running(ws: Workspace) -> None:
    """The pane's count of running generations is its own: it must not be Textual's ``_running`` (the message
    pump's flag), which a finished generation would set to 0, leaving a pane Textual treats as stopped."""
    app = NcanvasApp(ws, host="test", gpu_stats=lambda: [])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        pane = app.query_one("ExplainPane")
        assert pane.is_running
        pane._done(pane._cancel)  # what the last generation's worker calls when it ends
        assert pane.is_running, "the message pump still runs after a generation"
