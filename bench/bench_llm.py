"""Training throughput of the art-expert LM vs ``transformers.LlamaForCausalLM`` of identical config.

Same weights, batch, sequence length and dtype, measured in one process in alternating rounds. On CUDA: the full
56M config, bf16 autocast, MFU (6N + attention FLOPs per token over 989 TFLOPS) and the projected wall time of the
20-epoch schedule on 100K pairs. On CPU: a reduced config (fp32), so the run takes a minute.

    python bench/bench_llm.py [--batch 8] [--seq 256] [--steps 5] [--rounds 3] [--compile]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.llm.model import ArtExpertLM, LMConfig, lm_loss, to_hf_llama  # noqa: E402

H100_BF16_FLOPS = 989e12
PAIR_TOKENS = 170  # mean prompt+explanation tokens per pair (corpus BPE; GPT-2's is similar)


def step_fn(model, logits_of, opt, x, y, amp):
    def step() -> None:
        with torch.autocast(x.device.type, **amp):
            loss = lm_loss(logits_of(model, x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def timed(step, n: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    cuda = torch.cuda.is_available()
    ap.add_argument("--batch", type=int, default=32 if cuda else 8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20 if cuda else 3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="torch.compile both models")
    args = ap.parse_args()
    device = torch.device("cuda" if cuda else "cpu")
    cfg = LMConfig() if cuda else LMConfig(vocab_size=8192, n_layer=4, d_model=256, n_head=8, n_kv_head=2, d_ff=1024)
    amp = {"dtype": torch.bfloat16, "enabled": True} if cuda else {"enabled": False}
    torch.manual_seed(0)
    ours = ArtExpertLM(cfg).to(device)
    hf = to_hf_llama(ours).to(device)  # same weights; its own copy
    hf.config._attn_implementation = "sdpa"
    x = torch.randint(0, cfg.vocab_size, (args.batch, args.seq), device=device)
    y = torch.roll(x, -1, dims=1)
    runners = {}
    for name, model, logits_of in (("ours", ours, lambda m, t: m(t)), ("hf-llama", hf, lambda m, t: m(input_ids=t).logits)):
        fwd = torch.compile(model) if args.compile else model
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
        runners[name] = step_fn(fwd, logits_of, opt, x, y, amp)
        timed(runners[name], 2, device)  # warm-up (and compile)
    times = {k: 0.0 for k in runners}
    for _ in range(args.rounds):
        for k, step in runners.items():
            times[k] += timed(step, args.steps, device)
    tokens = args.batch * args.seq * args.steps * args.rounds
    tok_s = {k: tokens / t for k, t in times.items()}
    n = ours.num_params()
    print(f"device {torch.cuda.get_device_name() if cuda else 'cpu'}  params {n / 1e6:.1f}M  config "
          f"{cfg.n_layer}x{cfg.d_model} vocab {cfg.vocab_size}  batch {args.batch}x{args.seq}  "
          f"dtype {'bf16 autocast' if cuda else 'fp32'}{'  compiled' if args.compile else ''}")
    for k, v in tok_s.items():
        print(f"  {k:9s} {v:12,.0f} tokens/s")
    print(f"  ratio ours / hf-llama = {tok_s['ours'] / tok_s['hf-llama']:.2f}x")
    if cuda:
        flops_tok = 6 * n + 12 * cfg.n_layer * cfg.n_head * cfg.head_dim * args.seq
        mfu = tok_s["ours"] * flops_tok / H100_BF16_FLOPS
        epoch_tokens = 100_000 * 0.9 * PAIR_TOKENS
        print(f"  MFU {mfu * 100:.1f}% of 989 TFLOPS bf16;  20 epochs x 100K pairs "
              f"(~{epoch_tokens / 1e6:.1f}M tokens/epoch): {20 * epoch_tokens / tok_s['ours'] / 60:.1f} min")


if __name__ == "__main__":
    main()
