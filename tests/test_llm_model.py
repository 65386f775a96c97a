"""The art-expert transformer against HF Llama, the KV cache, sampling against HF's warpers, streaming decode."""

from __future__ import annotations

import threading

import pytest
import torch

from core.llm.generate import Explainer, StreamDecoder
from core.llm.model import ArtExpertLM, LMConfig, to_hf_llama
from core.llm.sampling import SamplingSettings, process, repetition_penalty, top_k_filter, top_p_filter
from core.llm.tokenizer import train_bpe

TINY = LMConfig(vocab_size=300, block_size=96, n_layer=2, n_head=4, n_kv_head=2, d_model=64, d_ff=160)


@pytest.fixture(scope="module")
def tok():
    from core.explain.dataset import generate

    return train_bpe((r["prompt"] + "\n" + r["explanation"] for r in generate(200, 0)), 400)


def tiny_model(vocab: int = 300, seed: int = 0) -> ArtExpertLM:
    torch.manual_seed(seed)
    cfg = LMConfig(**{**TINY.to_dict(), "vocab_size": vocab})
    return ArtExpertLM(cfg).eval()


def test_full_size_parameter_count() -> None:
    with torch.device("meta"):  # no memory, no init time
        model = ArtExpertLM(LMConfig())
    n = model.num_params()
    assert n == 56_148_992  # 50257*512 (tied) + 8 * 3,802,112 + 512
    assert round(n / 1e6, 1) == 56.1


def test_logits_match_hf_llama() -> None:
    model = tiny_model()
    hf = to_hf_llama(model).eval()
    x = torch.randint(0, 300, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(x), hf(x).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    # The comparison is sensitive: a different RoPE base alone breaks it.
    hf.model.rotary_emb.inv_freq.mul_(0.5)
    with torch.no_grad():
        assert (hf(x).logits - ours).abs().max() > 1e-3


def test_hf_llama_copy_keeps_a_non_default_rope_base() -> None:
    """transformers 4.x ignores ``rope_parameters=`` (a 5.x argument) and would silently use base 10000."""
    torch.manual_seed(0)
    model = ArtExpertLM(LMConfig(**{**TINY.to_dict(), "rope_theta": 500_000.0})).eval()
    hf = to_hf_llama(model).eval()
    x = torch.randint(0, 300, (2, 60), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(model(x), hf(x).logits, atol=1e-5, rtol=1e-5)


def test_kv_cache_chunks_match_full_forward() -> None:
    model = tiny_model()
    x = torch.randint(0, 300, (2, 30), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(x)
        cache = model.new_cache(batch=2)
        parts = [model(x[:, :12], cache=cache), model(x[:, 12:20], cache=cache)]
        parts += [model(x[:, t:t + 1], cache=cache) for t in range(20, 30)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)


def test_greedy_with_kv_cache_equals_without_and_hf_generate(tok) -> None:
    model = tiny_model(tok.vocab_size, seed=3)
    ex = Explainer(model, tok, "llm", "tiny")
    prompt = "CNN Classification Results:\nArtist: Claude Monet (96.2% confidence)"
    s = SamplingSettings(max_new_tokens=40, temperature=0, repetition_penalty=1.0)
    cached = list(ex.generate_ids(prompt, s))
    uncached = list(ex.generate_ids(prompt, s, use_cache=False))
    assert len(cached) > 5 and cached == uncached
    ids = torch.tensor([tok.encode(prompt)])
    hf = to_hf_llama(model).eval()
    out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=len(cached), do_sample=False,
                      eos_token_id=tok.eos_id, pad_token_id=tok.eos_id)
    assert out[0, ids.shape[1]:].tolist() == cached


def test_sampling_is_seedable(tok) -> None:
    ex = Explainer(tiny_model(tok.vocab_size, seed=4), tok, "llm", "tiny")
    s = SamplingSettings(max_new_tokens=30, temperature=1.0, top_k=0, top_p=1.0, seed=11)
    assert list(ex.generate_ids("Explain", s)) == list(ex.generate_ids("Explain", s))


FIXED = torch.tensor([[2.0, 1.0, 1.0, 0.5, 0.5, 0.5, -1.0, -3.0, 4.0, 0.0],
                      [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
                      [5.0, 5.0, 5.0, -5.0, -5.0, 0.0, 0.0, 0.0, 0.0, 0.0]])


@pytest.mark.parametrize("k", [1, 2, 3, 5, 9])
def test_top_k_matches_hf_warper(k: int) -> None:
    from transformers.generation.logits_process import TopKLogitsWarper

    ids = torch.zeros(3, 1, dtype=torch.long)
    assert torch.equal(top_k_filter(FIXED, k), TopKLogitsWarper(top_k=k)(ids, FIXED.clone()))


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.8, 0.95, 0.999])
def test_top_p_matches_hf_warper(p: float) -> None:
    from transformers.generation.logits_process import TopPLogitsWarper

    ids = torch.zeros(3, 1, dtype=torch.long)
    assert torch.equal(top_p_filter(FIXED, p), TopPLogitsWarper(top_p=p)(ids, FIXED.clone()))


def test_full_chain_matches_hf_processors() -> None:
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    prev = torch.tensor([[0, 8, 8, 3], [9, 1, 1, 1], [0, 5, 2, 2]])
    s = SamplingSettings(temperature=0.7, top_k=6, top_p=0.9, repetition_penalty=1.3)
    hf = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(1.3), TemperatureLogitsWarper(0.7),
                              TopKLogitsWarper(6), TopPLogitsWarper(0.9)])
    torch.testing.assert_close(process(FIXED, prev, s), hf(prev, FIXED.clone()))
    torch.testing.assert_close(repetition_penalty(FIXED, prev, 1.3),
                               RepetitionPenaltyLogitsProcessor(1.3)(prev, FIXED.clone()))


def test_stream_decoder_never_splits_multibyte_characters() -> None:
    ascii_only = train_bpe(["plain ascii text about paintings and brushwork"] * 50, 300)
    text = "Dürer → Cézanne, 浮世絵 by Hokusai 🌊 done"
    ids = ascii_only.encode(text)
    assert len(ids) > len(text)  # non-ASCII characters are several byte tokens each
    dec = StreamDecoder(ascii_only)
    deltas = [dec.push(i) for i in ids] + [dec.flush()]
    assert "".join(deltas) == text
    assert all("\ufffd" not in d for d in deltas)
    assert sum(1 for d in deltas if d == "") >= 5  # held back while a character was incomplete


def test_stream_is_cancellable(tok) -> None:
    ex = Explainer(tiny_model(tok.vocab_size, seed=5), tok, "llm", "tiny")
    cancel = threading.Event()
    got = []
    for delta in ex.stream("Explain", SamplingSettings(max_new_tokens=60, temperature=1.0, seed=0), cancel):
        got.append(delta)
        cancel.set()
    assert len(got) == 1


def test_prompt_longer_than_context_is_one_clear_error(tok) -> None:
    from core.errors import NcanvasError

    ex = Explainer(tiny_model(tok.vocab_size), tok, "llm", "tiny")
    with pytest.raises(NcanvasError, match="context is 96"):
        list(ex.generate_ids("word " * 200))
