"""``ncanvas train llm --preset small``: the preset fills every option the user did not give (an option given
explicitly wins, even at its default value), job.json records it, the new-job form fills its fields from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.errors import NcanvasError
from core.explain.presets import PRESETS
from jobs import supervisor as sv
from tests.jobhelpers import wait_for
from tui.cli import app

CAPPED = ["--n-pairs", "300", "--max-steps", "2", "--eval-max", "8", "--faith-eval", "4", "--checkpoint-every", "0"]


@pytest.mark.slow
def test_cli_preset_fills_only_what_was_not_given(ws) -> None:
    # --lr 0.0003 is the kind's default: given explicitly it still wins over the preset's 1e-3
    res = CliRunner().invoke(app, ["--home", str(ws.root), "train", "llm", "--preset", "small", "--lr", "0.0003",
                                   *CAPPED, "--json"])
    assert res.exit_code == 0, res.output
    jid = json.loads(res.stdout)["id"]
    cfg = json.loads(ws.run(jid).job_json.read_text())["config"]
    small = PRESETS["small"]
    assert cfg["preset"] == "small" and cfg["lr"] == 0.0003 and cfg["n_pairs"] == 300 and cfg["max_steps"] == 2
    assert {k: cfg[k] for k in ("n_layer", "d_model", "d_ff", "tokenizer", "epochs", "select_by")} == {
        k: small[k] for k in ("n_layer", "d_model", "d_ff", "tokenizer", "epochs", "select_by")}
    wait_for(lambda: sv.job_status(ws, jid).state in ("finished", "failed"), 240, 0.2, "preset job")
    assert sv.job_status(ws, jid).state == "finished", ws.run(jid).stdout.read_text()[-2000:]
    assert ws.run(jid).best.is_file()


def test_no_preset_keeps_the_defaults() -> None:
    from jobs.config import build_config
    from jobs.llm import LLMConfig

    cfg = build_config(LLMConfig, {})
    assert cfg.preset == "none" and cfg.n_layer == 8 and cfg.lr == 3e-4


def test_build_config_applies_a_preset_under_the_given_values() -> None:
    from jobs.config import build_config
    from jobs.gpt2 import GPT2Config
    from jobs.llm import LLMConfig

    cfg = build_config(LLMConfig, {"preset": "small", "epochs": 1})
    assert cfg.preset == "small" and cfg.n_layer == PRESETS["small"]["n_layer"] and cfg.epochs == 1
    with pytest.raises(NcanvasError, match="--preset must be one of none, small"):
        build_config(LLMConfig, {"preset": "huge"})
    with pytest.raises(NcanvasError, match="unknown option"):
        build_config(GPT2Config, {"preset": "small"})  # a kind without presets has no --preset


def test_cli_unknown_preset_is_refused(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["--home", str(tmp_path), "train", "llm", "--preset", "huge"])
    assert res.exit_code != 0 and "huge" in res.output
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())


async def test_form_fills_its_fields_from_the_preset(tmp_path: Path) -> None:
    from core.paths import Workspace
    from tests.tui_pilot import wait_until
    from tui.app import NcanvasApp

    ws = Workspace(tmp_path / "ws").ensure()
    app_ = NcanvasApp(ws, host="test", gpu_stats=lambda: [])
    async with app_.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        form = await wait_until(pilot, lambda: app_.screen.query("#kind") and app_.screen, what="form")
        form.query_one("#kind").value = "llm"
        await wait_until(pilot, lambda: form.query("#opt-preset"), what="llm fields")
        await pilot.pause()  # the select composes its children first
        form.query_one("#opt-preset").value = "small"
        await wait_until(pilot, lambda: form.query_one("#opt-n_layer").value == "4", what="preset filled in")
        assert form.query_one("#opt-lr").value == str(PRESETS["small"]["lr"])
        form.query_one("#opt-epochs").value = "3"  # edited after the preset: the form's value is what starts
        req = form.validate()
        assert req.config["preset"] == "small" and req.config["n_layer"] == 4 and req.config["epochs"] == 3
        form.query_one("#opt-preset").value = "none"
        await wait_until(pilot, lambda: form.query_one("#opt-n_layer").value == "8", what="defaults back")
