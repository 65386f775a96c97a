"""Faithfulness inside training: a greedy faithfulness eval at each validation logged as val metrics, and
``--select-by faith|loss`` deciding best_model.pt and early stopping (real tiny jobs that train a few steps)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from core.checkpoint import load_checkpoint
from core.errors import NcanvasError
from core.metrics import iter_rows
from tests.test_llm_train import TINY_LLM, rows, run_to_end
from tui.cli import app

FAITH_KEYS = {"faith", "faith_labels", "faith_numbers", "faith_claims", "faith_ending", "faith_n"}


def replay_best(values: list[float], higher: bool) -> list[bool]:
    """The loop's rule: an evaluation is the best when strictly better than every one before it."""
    best, out = None, []
    for v in values:
        better = best is None or (v > best if higher else v < best)
        best = v if better else best
        out.append(better)
    return out


@pytest.mark.slow
def test_each_validation_logs_faithfulness_beside_val_loss(ws) -> None:
    jid = run_to_end(ws, "llm", dict(TINY_LLM, faith_eval=8, eval_every=4))
    val = rows(ws, jid, "val")
    assert len(val) >= 3 and all(FAITH_KEYS <= set(r) for r in val), val[0]
    assert all(r["faith_n"] == 8 and 0.0 <= r["faith"] <= r["faith_labels"] <= 1.0 for r in val)
    events = [r for r in iter_rows(ws.run(jid).metrics) if r.get("event") in ("eval", "epoch_end")]
    assert all("val_faith" in e and "val_loss" in e for e in events)
    # loss still decides by default
    assert [e["best"] for e in events] == replay_best([e["val_loss"] for e in events], higher=False)
    log = ws.run(jid).stdout.read_text()
    assert "faithfulness (greedy, 8 prompts)" in log
    from jobs.kinds import KINDS

    assert any("val/faith" in keys for _, keys in KINDS["llm"].panels)  # training_curves.png draws it


@pytest.mark.slow
def test_select_by_faith_decides_best_model_and_early_stopping(ws) -> None:
    cfg = dict(TINY_LLM, faith_eval=8, eval_every=3, select_by="faith", patience=2, epochs=3)
    jid = run_to_end(ws, "llm", cfg)
    all_rows = list(iter_rows(ws.run(jid).metrics))
    events = [r for r in all_rows if r.get("event") in ("eval", "epoch_end")]
    faith = [e["val_faith"] for e in events]
    assert [e["best"] for e in events] == replay_best(faith, higher=True)
    best = load_checkpoint(ws.run(jid).best)
    assert best["best_metric"] == max(faith)
    first_best = events[faith.index(max(faith))]["step"]
    assert best["step"] == first_best  # ties keep the earlier checkpoint
    stop = [r for r in all_rows if r.get("event") == "early_stop"]
    bad = len(events) - 1 - faith.index(max(faith))
    assert (len(stop) == 1) == (bad >= 2), (faith, stop)
    if stop:
        assert "no better val_faith" in ws.run(jid).stdout.read_text()


def test_select_by_faith_needs_the_faith_eval() -> None:
    from jobs.config import build_config
    from jobs.llm import LLMConfig

    with pytest.raises(NcanvasError, match="--select-by faith needs --faith-eval"):
        build_config(LLMConfig, {"select_by": "faith", "faith_eval": 0})
    with pytest.raises(NcanvasError, match="--select-by must be one of loss, faith"):
        build_config(LLMConfig, {"select_by": "ppl"})
    res = CliRunner().invoke(app, ["train", "llm", "--select-by", "faith", "--faith-eval", "0"])
    assert res.exit_code != 0 and len(res.output.strip().splitlines()) == 1, res.output


def test_the_task_follows_select_by() -> None:
    from jobs.config import build_config
    from jobs.llm import LLMConfig, task

    t = task(build_config(LLMConfig, {"select_by": "faith"}))
    assert (t.select_split, t.select_key, t.select_higher) == ("val", "faith", True)
    t = task(build_config(LLMConfig, {}))
    assert (t.select_key, t.select_higher) == ("loss", False)
    assert build_config(LLMConfig, {}).faith_eval == 64  # on by default


def test_faith_eval_stops_at_its_time_budget() -> None:
    import torch

    from core.explain.check import Output
    from core.explain.dataset import generate
    from core.llm.faith import faith_metrics
    from core.llm.model import ArtExpertLM, LMConfig
    from core.llm.sampling import SamplingSettings
    from core.llm.tokenizer import train_bpe

    tok = train_bpe((r["prompt"] + "\n" + r["explanation"] for r in generate(200, 0)), 500)
    torch.manual_seed(0)
    model = ArtExpertLM(LMConfig(vocab_size=tok.vocab_size, block_size=200, n_layer=1, n_head=2, n_kv_head=1,
                                 d_model=16, d_ff=32))
    cases = [Output("Claude Monet", "Impressionism", "Landscape", (96.2, 94.8, 91.3)),
             Output("El Greco", "Mannerism", "Portrait", (61.0, 95.0, 95.0)),
             Output("Vincent van Gogh", "Post-Impressionism", "Landscape", (88.0, 77.7, 66.6))]
    s = SamplingSettings(max_new_tokens=4, temperature=0)
    assert faith_metrics(model, tok, cases, settings=s)["faith_n"] == 3
    ticks = iter(range(0, 1000, 10))  # every look at the clock is 10 s later: over budget after the first batch
    part = faith_metrics(model, tok, cases, settings=s, batch_size=1, max_seconds=5.0, clock=lambda: next(ticks))
    assert part["faith_n"] == 1 and 0.0 <= part["faith"] <= 1.0
