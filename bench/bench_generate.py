"""Generation speed: the art-expert LM with its KV cache (and without) vs HF ``generate`` on the same weights.

Greedy decoding of a fixed number of new tokens (EOS ignored) after a real dataset prompt; prints time to
first token (TTFT) and decode tokens/s for each, and the ratios.

    python bench/bench_generate.py [--new 128] [--vocab 50257] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.explain.dataset import generate  # noqa: E402
from core.llm.generate import Explainer  # noqa: E402
from core.llm.model import ArtExpertLM, LMConfig, to_hf_llama  # noqa: E402
from core.llm.sampling import SamplingSettings  # noqa: E402
from core.llm.tokenizer import train_bpe  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_ours(ex: Explainer, prompt: str, n: int, use_cache: bool) -> tuple[float, float]:
    s = SamplingSettings(max_new_tokens=n, temperature=0, repetition_penalty=1.0)
    t0 = time.perf_counter()
    first = None
    count = 0
    for _ in ex.generate_ids(prompt, s, use_cache=use_cache):
        count += 1
        if first is None:
            sync(ex.device)
            first = time.perf_counter() - t0
    sync(ex.device)
    total = time.perf_counter() - t0
    assert count == n, count
    return first or total, (n - 1) / max(total - (first or 0), 1e-9)


def run_hf(hf, ids: torch.Tensor, n: int) -> tuple[float, float]:
    from transformers.generation.streamers import BaseStreamer

    class FirstToken(BaseStreamer):
        def __init__(self) -> None:
            self.calls, self.first = 0, None

        def put(self, value) -> None:  # first call: the prompt; second: the first new token
            self.calls += 1
            if self.calls == 2:
                self.first = time.perf_counter()

        def end(self) -> None:
            pass

    st = FirstToken()
    t0 = time.perf_counter()
    out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                      do_sample=False, streamer=st, pad_token_id=0, eos_token_id=None)
    sync(ids.device)
    total = time.perf_counter() - t0
    assert out.shape[1] - ids.shape[1] == n
    ttft = st.first - t0
    return ttft, (n - 1) / (total - ttft)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=50257, help="vocabulary of the (random-weight) model")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    recs = list(generate(2000, 0))
    tok = train_bpe((r["prompt"] + "\n" + r["explanation"] for r in recs), 8192)
    tok.eos_id = -1  # random weights: never stop early, every run decodes exactly --new tokens
    torch.manual_seed(0)
    model = ArtExpertLM(LMConfig(vocab_size=max(args.vocab, tok.vocab_size))).to(device).eval()
    hf = to_hf_llama(model).to(device).eval()
    ex = Explainer(model, tok, "llm", "bench")
    prompt = recs[0]["prompt"]
    ids = torch.tensor([tok.encode(prompt)], device=device)
    rows = {"ours (KV cache)": lambda: run_ours(ex, prompt, args.new, True),
            "ours (no cache)": lambda: run_ours(ex, prompt, args.new, False),
            "HF generate": lambda: run_hf(hf, ids, args.new)}
    with torch.inference_mode():
        for fn in rows.values():
            fn()  # warm-up
        res: dict[str, list[tuple[float, float]]] = {k: [] for k in rows}
        for _ in range(args.repeats):  # interleaved rounds: background load hits every contender alike
            for k, fn in rows.items():
                res[k].append(fn())
    best = {k: (min(r[0] for r in v), max(r[1] for r in v)) for k, v in res.items()}
    print(f"device {device}  params {model.num_params() / 1e6:.1f}M  prompt {ids.shape[1]} tokens  "
          f"{args.new} new tokens, greedy, best of {args.repeats}")
    for k, (ttft, tps) in best.items():
        print(f"  {k:16s} TTFT {ttft * 1000:7.1f} ms   decode {tps:8.1f} tokens/s")
    o, h, nc = best["ours (KV cache)"], best["HF generate"], best["ours (no cache)"]
    print(f"  decode ratio ours / HF = {o[1] / h[1]:.2f}x   TTFT ratio HF / ours = {h[0] / o[0]:.2f}x   "
          f"KV cache speed-up = {o[1] / nc[1]:.2f}x")


if __name__ == "__main__":
    main()
