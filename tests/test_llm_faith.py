"""Faithfulness eval, grounded decoding, prompt-format versions and GPT-2's Cache API, on tiny local models."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from core.explain import PROMPT_FORMAT, format_prompt, parse_prompt
from core.explain.check import Output, check
from core.explain.dataset import generate, generate_splits, heldout_pair
from core.explain.faithsets import build_sets, low_cases, prompt_of, unseen_cases, validation_cases
from core.llm.generate import Explainer
from core.llm.model import ArtExpertLM, LMConfig
from core.llm.sampling import SamplingSettings
from core.llm.tokenizer import train_bpe

MONET = Output("Claude Monet", "Impressionism", "Landscape", (96.2, 94.8, 91.3))


@pytest.fixture(scope="module")
def tok():
    return train_bpe((r["prompt"] + "\n" + r["explanation"] for r in generate(400, 0)), 600)


def tiny_explainer(tok, seed: int = 0, prompt_format: int = 2) -> Explainer:
    torch.manual_seed(seed)
    cfg = LMConfig(vocab_size=tok.vocab_size, block_size=160, n_layer=1, n_head=2, n_kv_head=1, d_model=32,
                   d_ff=64)
    return Explainer(ArtExpertLM(cfg), tok, "llm", "tiny", prompt_format=prompt_format)


class ScriptedLM(torch.nn.Module):
    """Prefers, step by step, the tokens of a fixed text (then EOS); every other token gets a small random score,
    so a constraint that refuses the scripted token has somewhere else to go."""

    def __init__(self, script: list[int], vocab: int, eos: int, prompt_len: int, block: int = 400) -> None:
        super().__init__()
        self.script, self.vocab, self.eos, self.prompt_len = script, vocab, eos, prompt_len
        self.cfg = LMConfig(vocab_size=vocab, block_size=block, n_layer=1, n_head=2, n_kv_head=1, d_model=8, d_ff=8)
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.noise = torch.rand(block, vocab, generator=torch.Generator().manual_seed(0))

    def new_cache(self, batch: int = 1, max_len: int | None = None):
        return type("Cache", (), {"pos": 0})()

    def forward(self, idx, cache=None, last_only=False):
        start = cache.pos if cache is not None else 0
        T = idx.size(1)
        if cache is not None:
            cache.pos += T
        logits = self.noise[start:start + T].clone().unsqueeze(0).repeat(idx.size(0), 1, 1)
        for t in range(T):
            step = start + t + 1 - self.prompt_len  # the index in the script of the token that comes next
            if 0 <= step < len(self.script):
                logits[:, t, self.script[step]] = 10.0
            elif step >= len(self.script):
                logits[:, t, self.eos] = 10.0
        return logits


def scripted(tok, text: str, prompt: str) -> Explainer:
    """An explainer in today's prompt format whose model writes ``text`` after the prompt as the explainer encodes
    it (the prompt is rebuilt on encode, so its length is the explainer's, not the string's)."""
    ex = Explainer(torch.nn.Module(), tok, "llm", "scripted", prompt_format=PROMPT_FORMAT)
    ex.model = ScriptedLM(tok.encode("\n" + text), tok.vocab_size, tok.eos_id, len(ex.prompt_ids(prompt)))
    return ex


# ------------------------------------------------------------------------------------------------ prompt sets


def test_prompt_sets_are_held_out_low_and_unseen() -> None:
    recs = generate_splits(6000, seed=0)
    sets = build_sets(recs, n=40, n_unseen=20)
    train_triples = {(r["artist"], r["style"], r["genre"]) for r in recs["train"]}
    train_pairs = {(r["artist"], r["style"]) for r in recs["train"]}
    assert len(sets["heldout"]) == 40 and not {(c.artist, c.style, c.genre) for c in sets["heldout"]} & train_triples
    assert all(any(60 <= x <= 65 for x in c.confidences) for c in sets["low"])
    assert all(all(60 <= x <= 65 for x in c.confidences) for c in sets["low"][3::4])  # every fourth: all three
    assert len(sets["unseen"]) == 20 and not {(c.artist, c.style) for c in sets["unseen"]} & train_pairs
    assert build_sets(recs, n=40, n_unseen=20) == sets  # deterministic
    val = validation_cases(recs, 64)
    assert len(val) == 64 and len({prompt_of(c) for c in val}) == 64
    assert low_cases(recs["test"], 8, seed=1) != low_cases(recs["test"], 8, seed=2)
    # the generator's held-out pairings are always there to be unseen, however many pairs are drawn
    assert any(heldout_pair(c.artist, c.style) for c in unseen_cases(recs["train"], 200))


# ------------------------------------------------------------------------------------------------ generation


def test_a_checkpoint_gets_the_prompt_format_it_was_trained_on(tok) -> None:
    v3 = format_prompt("Claude Monet", 96.2, "Cubism", 94.8, "Landscape", 91.3)
    v2 = format_prompt("Claude Monet", 96.2, "Cubism", 94.8, "Landscape", 91.3, version=2)
    old, mid, new = (tiny_explainer(tok, prompt_format=v) for v in (1, 2, 3))
    assert old.prompt_ids(v3) == tok.encode(format_prompt("Claude Monet", 96.2, "Cubism", 94.8,
                                                          "Landscape", 91.3, version=1))
    assert mid.prompt_ids(v3) == tok.encode(v2) and new.prompt_ids(v2) == tok.encode(v3)
    assert new.prompt_ids(v3) == tok.encode(v3) and old.prompt_ids("free text") == tok.encode("free text")


def test_batched_greedy_equals_one_by_one(tok) -> None:
    ex = tiny_explainer(tok, seed=3)
    prompts = [r["prompt"] for r in generate(7, seed=5)]
    s = SamplingSettings(max_new_tokens=24, temperature=0, repetition_penalty=1.0)
    assert ex.generate_batch(prompts, s, batch_size=3) == [ex.explain(p, s) for p in prompts]


def test_gpt2_decodes_through_the_cache_api_without_warnings(tok, tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from core.llm.generate import load_explainer
    from core.llm.hooks import save_hf_dir

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=tok.vocab_size, n_positions=160, n_embd=32, n_layer=2, n_head=2,
                                       bos_token_id=tok.eos_id, eos_token_id=tok.eos_id, use_cache=False))
    ex = Explainer(model, tok, "gpt2", "tiny-gpt2", prompt_format=2)
    prompt = next(generate(1, 3))["prompt"]
    s = SamplingSettings(max_new_tokens=12, temperature=0, repetition_penalty=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the legacy past_key_values form warns (FutureWarning) in transformers 5
        cached = list(ex.generate_ids(prompt, s))
    ids = tok.encode(prompt)
    with torch.no_grad():  # without any cache: the full sequence each step
        full = []
        for _ in range(12):
            nxt = int(model(input_ids=torch.tensor([ids + full]), use_cache=False).logits[0, -1].argmax())
            if nxt == tok.eos_id:
                break
            full.append(nxt)
    assert cached == full
    out = save_hf_dir(model, tok, tmp_path / "best_model_hf", prompt_format=2)
    assert json.loads((out / "config.json").read_text())["use_cache"] is True
    assert model.config.use_cache is False  # training keeps it off
    loaded = load_explainer(out)
    assert loaded.prompt_format == 2 and list(loaded.generate_ids(prompt, s)) == cached
    (out / "ncanvas.json").unlink()
    assert load_explainer(out).prompt_format == 1  # an export from before versions: the old format


# ------------------------------------------------------------------------------------------------ faithfulness


def test_faithfulness_scores_generated_texts_and_keeps_failures(tok) -> None:
    from core.llm.faith import GREEDY, faith_metrics, faithfulness, score_texts

    good = ("The network's strongest evidence for Claude Monet is the dissolving outlines. At 96.2%, the artist "
            "prediction is very high. Impressionism fits at 94.8%. The landscape label comes from a horizon line "
            "at 91.3%.")
    rep = score_texts([MONET, MONET], [good, good.replace("94.8%", "80.7%")])
    assert rep.rates["faith"] == 0.5 and rep.rates["faith_numbers"] == 0.5 and rep.rates["faith_labels"] == 1.0
    assert "faith_low_confidence" not in rep.rates  # never applied
    assert rep.failures[0]["reasons"] == ["numbers: not a confidence of the prompt: 80.7%"]
    ex = scripted(tok, good, prompt_of(MONET))
    rep = faithfulness(ex, [MONET], GREEDY)
    assert rep.texts == [good] and rep.rates["faith"] == 1.0 and rep.n == 1
    model = tiny_explainer(tok).model.train()
    rates = faith_metrics(model, tok, [MONET, Output("El Greco", "Mannerism", "Portrait", (61.0, 95.0, 95.0))],
                          settings=SamplingSettings(max_new_tokens=8, temperature=0))
    assert model.training and 0.0 <= rates["faith"] <= 1.0 and "faith_low_confidence" in rates


# ------------------------------------------------------------------------------------------------ grounded decoding


BAD = ("Degas painted this. At 80.7%, the artist prediction is high. Impressionism fits at 94.8%. The landscape "
       "label comes from a horizon line at 91.3%.")


def test_the_constraint_refuses_numbers_and_names_the_output_does_not_hold(tok) -> None:
    from core.llm.grounded import grounded_explain

    ex = scripted(tok, BAD, prompt_of(MONET))
    plain = grounded_explain(ex, prompt_of(MONET), SamplingSettings(temperature=0, max_new_tokens=80), "off")
    assert plain.text == BAD and not plain.check.facts["numbers"].ok and not plain.check.facts["claims"].ok
    fixed = grounded_explain(ex, prompt_of(MONET), SamplingSettings(temperature=0, max_new_tokens=80), "constrain")
    assert fixed.check.facts["numbers"].ok and fixed.check.facts["claims"].ok, fixed.text
    assert "80.7" not in fixed.text and "Degas" not in fixed.text and fixed.tries == 1
    from core.llm.grounded import GroundingConstraint

    g = GroundingConstraint(ex, MONET)
    assert g.ok("", "French, 1840-1926") and g.ok("", "At 96.2%") and g.ok("", "at 9")
    assert not g.ok("", "At 8") and not g.ok("", "At 96.3") and not g.ok("", "At 97%") and g.ok("", "At 96%")
    assert g.ok("the", "the Post-Impressionism") and not g.ok("the", "the Baroque") and not g.ok("", "Degas")


def test_resampling_keeps_the_best_grounded_text_and_streams_restarts(tok) -> None:
    from core.llm.grounded import grounded_stream

    ex = tiny_explainer(tok, seed=1)  # untrained: every text fails, so every try is used
    events = list(grounded_stream(ex, prompt_of(MONET), SamplingSettings(temperature=0, max_new_tokens=10),
                                  "resample", tries=3))
    kinds = [e.kind for e in events]
    assert kinds.count("restart") == 2 and kinds[-1] == "done"
    res = events[-1].result
    assert res.tries == 3 and res.check is not None and not res.check.passed
    free = list(grounded_stream(ex, "Tell me about paint.", SamplingSettings(max_new_tokens=5, seed=0)))
    assert free[-1].result.check is None and parse_prompt("Tell me about paint.") is None


def test_grounded_decoding_passes_through_a_good_text_at_once(tok) -> None:
    from core.llm.grounded import grounded_explain

    good = "Claude Monet, Impressionism and a landscape: 96.2%, 94.8% and 91.3%."
    res = grounded_explain(scripted(tok, good, prompt_of(MONET)), prompt_of(MONET),
                           SamplingSettings(temperature=0, max_new_tokens=60))
    assert res.text == good and res.check.passed and res.tries == 1 and res.decode == "both"
    assert check(good, MONET).passed


# ------------------------------------------------------------------------------------------------ the preset


@pytest.mark.slow
def test_small_preset_is_a_valid_config_and_its_checkpoints_are_faith_ready(ws) -> None:
    from core.checkpoint import load_checkpoint
    from core.errors import NcanvasError
    from core.explain.presets import preset
    from core.llm.generate import load_explainer
    from jobs import supervisor as sv
    from jobs.llm import LLMConfig
    from tests.jobhelpers import wait_for

    LLMConfig(**preset("small")).validate()
    with pytest.raises(NcanvasError, match="presets: small"):
        preset("huge")
    # capped: 2 steps, a short eval (the preset's 64 greedy prompts of an untrained model run to the token limit),
    # one thread (two spinning threads beside the other test worker slowed it tenfold on a busy CI machine)
    capped = {**preset("small"), "n_pairs": 300, "max_steps": 2, "eval_max": 8, "checkpoint_every": 0,
              "faith_eval": 8, "cpu_threads": 1}
    rec, _ = sv.start_job(ws, "llm", capped)
    wait_for(lambda: sv.job_status(ws, rec.id).state in ("finished", "failed"), 240, 0.2, "preset job")
    assert sv.job_status(ws, rec.id).state == "finished", ws.run(rec.id).stdout.read_text()[-2000:]
    best = ws.run(rec.id).best
    assert load_checkpoint(best)["extra"]["prompt_format"] == 3
    ex = load_explainer(best)
    assert ex.prompt_format == 3
    pieces = [ex.tokenizer.tok.id_to_token(i) for i in ex.tokenizer.encode(" 96.2%")]
    assert pieces[:5] == ["Ġ", "9", "6", ".", "2"]  # single digits: copying a number is copying tokens
