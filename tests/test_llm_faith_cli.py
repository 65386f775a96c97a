"""`ncanvas explain` (verdict marks, --batch JSON lines, --decode) and `ncanvas eval-llm` (faithfulness rates) on a
tiny untrained checkpoint written in the test (the CLI's shape, not the model's quality, is under test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from core.checkpoint import make_checkpoint, save_checkpoint
from core.explain.check import FACTS
from core.explain.dataset import generate
from core.llm.model import ArtExpertLM, LMConfig
from core.llm.tokenizer import train_bpe
from tui.cli import app


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tok = train_bpe((r["prompt"] + "\n" + r["explanation"] for r in generate(300, 0)), 500)
    torch.manual_seed(0)
    cfg = LMConfig(vocab_size=tok.vocab_size, block_size=400, n_layer=1, n_head=2, n_kv_head=1, d_model=32, d_ff=64)
    model = ArtExpertLM(cfg)
    path = tmp_path_factory.mktemp("ck") / "best_model.pt"
    save_checkpoint(make_checkpoint(kind="llm", arch="tiny", config={"model": cfg.to_dict(), "n_pairs": 400,
                                                                     "data_seed": 0}, model=model.state_dict(),
                                    extra={"tokenizer_json": tok.to_json(), "eos_token": tok.eos_token,
                                           "tokenizer_name": "bpe", "prompt_format": 2}, with_rng=False), path)
    return path


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


FAST = ["--max-new-tokens", "6", "--tries", "2", "--seed", "0"]


def test_explain_shows_a_mark_per_fact(ckpt: Path) -> None:
    res = run("explain", "--checkpoint", str(ckpt), "--artist", "claude monet", "--style", "Impressionism",
              "--genre", "landscape", "--conf", "96.2,94.8,91.3", *FAST)
    assert res.exit_code == 0, res.output
    assert "Artist: Claude Monet, confidence 96.2%" in res.output
    assert "✗ artist Claude Monet" in res.output or "✓ artist Claude Monet" in res.output
    assert "✗ ends mid-sentence" in res.output  # six tokens cannot end a sentence: never shown as if correct
    res = run("explain", "--checkpoint", str(ckpt), "--artist", "claude monet", "--style", "Impressionism",
              "--genre", "landscape", *FAST, "--json", "--decode", "resample")
    out = json.loads(res.stdout)["explanations"][0]
    assert set(out["facts"]) == set(FACTS) and out["pass"] is False and out["tries"] == 2
    assert out["decode"] == "resample" and out["reasons"]


def test_batch_writes_one_json_line_per_input_line_in_order(ckpt: Path, tmp_path: Path) -> None:
    lines = [{"artist": "Claude Monet", "style": "Impressionism", "genre": "Landscape", "confidences": [96.2, 94.8, 91.3]},
             {"artist": "pablo picasso", "style": "cubism", "genre": "portrait", "confidences": [61.0, 88, 70.5],
              "id": "p-2"},
             "",
             {"artist": "Claude Monet", "style": "Impresionism", "genre": "Landscape", "confidences": [1, 2, 3]},
             {"artist": "Claude Monet", "style": "Impressionism", "genre": "Landscape", "confidences": [96.2, 94.8]},
             "not json",
             {"artist": "Edgar Degas", "style": "Impressionism", "genre": "Portrait", "confidences": [90, 90, 190]},
             {"artist": "Edgar Degas", "style": "Impressionism", "genre": "Portrait", "confidences": [90, 90, 90]}]
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    res = run("explain", "--checkpoint", str(ckpt), "--batch", str(path), "--json", *FAST)
    assert res.exit_code == 1  # some lines were bad: said once at the end
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("ncanvas: 4 of 7 batch lines were not valid (first: line 4: ")
    rows = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 4, 5, 6, 7, 8]
    ok = [r for r in rows if "error" not in r]
    assert [r["line"] for r in ok] == [1, 2, 8]
    assert ok[1]["id"] == "p-2" and ok[1]["artist"] == "Pablo Picasso" and ok[1]["confidences"] == [61.0, 88.0, 70.5]
    for r in ok:
        assert isinstance(r["text"], str) and set(r["facts"]) == set(FACTS) and isinstance(r["pass"], bool)
        assert all({"ok", "applies", "detail"} <= set(v) for v in r["facts"].values())
    errors = {r["line"]: r["error"] for r in rows if "error" in r}
    assert "did you mean Impressionism" in errors[4] and "three numbers" in errors[5]
    assert "not JSON" in errors[6] and "[0, 100]" in errors[7]
    res = run("explain", "--checkpoint", str(ckpt), "--batch", "-", "--json", *FAST, input=json.dumps(lines[0]))
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["line"] == 1


def test_batch_and_decode_bad_options_are_one_line(ckpt: Path, tmp_path: Path) -> None:
    def err(*args: str) -> str:
        res = run(*args)
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert res.exit_code == 1 and len(lines) == 1 and lines[0].startswith("ncanvas: "), res.output
        return lines[0]

    assert "add --json" in err("explain", "--checkpoint", str(ckpt), "--batch", "x.jsonl")
    assert "no --artist" in err("explain", "--checkpoint", str(ckpt), "--batch", "x.jsonl", "--json",
                                "--artist", "Claude Monet")
    assert "cannot read --batch" in err("explain", "--checkpoint", str(ckpt), "--batch", str(tmp_path / "no"),
                                        "--json")
    assert "--decode must be one of" in err("explain", "--checkpoint", str(ckpt), "--batch", "x", "--json",
                                            "--decode", "magic")


def test_eval_llm_reports_faithfulness_per_set_greedy_and_sampled(ckpt: Path) -> None:
    res = run("eval-llm", "--checkpoint", str(ckpt), "--max-examples", "4", "--samples", "0", "--prompts", "4",
              "--json")
    assert res.exit_code == 0, res.output
    faith = json.loads(res.stdout)["faithfulness"]["sets"]
    assert list(faith) == ["heldout", "low", "unseen"] and faith["unseen"]["n"] == 2
    for s in faith.values():
        for d in ("greedy", "sampled"):
            assert 0 <= s[d]["rates"]["faith"] <= 1 and s[d]["n"] == s["n"] and s[d]["failures"]
    assert "faith_low_confidence" in faith["low"]["greedy"]["rates"]
    res = run("eval-llm", "--checkpoint", str(ckpt), "--max-examples", "4", "--samples", "0", "--prompts", "4")
    assert res.exit_code == 0, res.output
    assert "all checks together" in res.output and "names the artist, style and genre" in res.output
    assert "ppl" in res.output
