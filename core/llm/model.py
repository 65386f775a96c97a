"""The art-expert transformer: a Llama-style decoder in one file (nanoGPT layout, read leaf-first).

RMSNorm, rotary position embeddings (the rotate-half convention of HF Llama, so weights copy across 1:1),
grouped-query attention through ``F.scaled_dot_product_attention`` (its ``enable_gqa`` needs torch >= 2.5),
SwiGLU MLP, tied input/output embeddings, and a preallocated KV cache for generation (prefill once, then one
token per step).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class LMConfig:
    vocab_size: int = 50257   # GPT-2's vocabulary; a corpus BPE is smaller
    block_size: int = 512     # longest sequence (prompt + explanation fits in ~250 tokens)
    n_layer: int = 8
    n_head: int = 8
    n_kv_head: int = 2        # GQA: 4 query heads share each K/V head, a 4x smaller KV cache
    d_model: int = 512
    d_ff: int = 2048          # SwiGLU hidden size
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def qkv_split(self) -> tuple[int, int, int]:
        """Widths of q, k and v in the fused qkv projection's output."""
        hs = self.head_dim
        return self.n_head * hs, self.n_kv_head * hs, self.n_kv_head * hs

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 (as HF Llama does): bf16 squares lose too much precision.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rope_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (max_len, head_dim) in the rotate-half layout."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    freqs = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)  # (T, hd/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (T, hd)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, nh, T, hs) by position; cos/sin are (T, hs)."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


class KVCache:
    """Preallocated keys/values for every layer: (B, n_kv, max_len, hs) each; ``pos`` tokens are filled."""

    def __init__(self, cfg: LMConfig, batch: int, max_len: int, device: torch.device, dtype: torch.dtype) -> None:
        shape = (batch, cfg.n_kv_head, max_len, cfg.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.pos = 0
        self.max_len = max_len

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = k.shape[2]
        self.k[layer][:, :, self.pos:self.pos + t] = k
        self.v[layer][:, :, self.pos:self.pos + t] = v
        end = self.pos + t
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


class Attention(nn.Module):
    def __init__(self, cfg: LMConfig, layer: int) -> None:
        super().__init__()
        self.cfg, self.layer = cfg, layer
        hs = cfg.head_dim
        # q, k and v in one matmul: one larger GEMM beats three small ones (fewer launches, better tiling).
        self.qkv_split = cfg.qkv_split
        self.qkv_proj = nn.Linear(cfg.d_model, sum(self.qkv_split), bias=False)
        self.o_proj = nn.Linear(cfg.n_head * hs, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        B, T, _ = x.shape
        hs = self.cfg.head_dim
        q, k, v = self.qkv_proj(x).split(self.qkv_split, dim=-1)
        q = q.view(B, T, self.cfg.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.cfg.n_kv_head, hs).transpose(1, 2)  # (B, nkv, T, hs)
        v = v.view(B, T, self.cfg.n_kv_head, hs).transpose(1, 2)  # (B, nkv, T, hs)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        past = 0
        if cache is not None:
            past = cache.pos
            k, v = cache.update(self.layer, k, v)  # (B, nkv, past+T, hs)
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        elif T == 1:
            y = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)  # one new token sees everything cached
        else:  # a chunk after a cached prefix: causal within the chunk, full over the past
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        y = y.transpose(1, 2).reshape(B, T, self.cfg.n_head * hs)  # (B, T, C)
        return self.o_proj(y)


class SwiGLU(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.gate_up_proj = nn.Linear(cfg.d_model, 2 * cfg.d_ff, bias=False)  # gate and up fused: one GEMM
        self.down_proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)  # (B, T, d_ff) each
        return self.down_proj(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: LMConfig, layer: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.self_attn = Attention(cfg, layer)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class ArtExpertLM(nn.Module):
    """Decoder-only LM; names follow HF Llama (``layers.i.self_attn...``) except the fused qkv / gate_up matrices."""

    rope_cos: torch.Tensor  # (block_size, hs) buffers, registered in __init__
    rope_sin: torch.Tensor

    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.embed_tokens.weight  # tied: saves vocab*d params, helps a small corpus
        cos, sin = rope_tables(cfg.head_dim, cfg.block_size, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):  # GPT-2's scaled init of residual outputs
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Parameters counted once (the tied head is the embedding)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None,
                last_only: bool = False) -> torch.Tensor:
        """Logits (B, T, V) for token ids (B, T); with ``cache`` the positions continue from ``cache.pos``."""
        B, T = idx.shape
        start = cache.pos if cache is not None else 0
        if start + T > self.cfg.block_size:
            raise ValueError(f"sequence of {start + T} tokens exceeds block_size {self.cfg.block_size}")
        cos, sin = self.rope_cos[start:start + T], self.rope_sin[start:start + T]  # (T, hs)
        x = self.embed_tokens(idx)  # (B, T, C)
        for block in self.layers:
            x = block(x, cos, sin, cache)
        if cache is not None:
            cache.pos += T
        x = self.norm(x if not last_only else x[:, -1:])
        return self.lm_head(x)  # (B, T, V)

    def new_cache(self, batch: int = 1, max_len: int | None = None) -> KVCache:
        p = self.embed_tokens.weight
        return KVCache(self.cfg, batch, max_len or self.cfg.block_size, p.device, p.dtype)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over targets != -100 (prompt and padding positions are -100)."""
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1), ignore_index=-100)


def to_hf_llama(model: ArtExpertLM):  # -> transformers.LlamaForCausalLM
    """The same weights in ``transformers.LlamaForCausalLM`` (for parity tests and benchmarks)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    c = model.cfg
    # ``rope_theta=`` is read by transformers 4.x and folded into ``rope_parameters`` by 5.x; passing
    # ``rope_parameters`` instead would be silently ignored by 4.x (which then uses its default base).
    hf_cfg = LlamaConfig(vocab_size=c.vocab_size, hidden_size=c.d_model, intermediate_size=c.d_ff,
                         num_hidden_layers=c.n_layer, num_attention_heads=c.n_head,
                         num_key_value_heads=c.n_kv_head, max_position_embeddings=c.block_size,
                         rms_norm_eps=c.norm_eps,
                         rope_theta=c.rope_theta,  # type: ignore[call-arg]  # see the comment above
                         tie_word_embeddings=True, attention_bias=False, mlp_bias=False,
                         bos_token_id=None, eos_token_id=None, pad_token_id=None)
    hf = LlamaForCausalLM(hf_cfg)
    state = {}
    for k, v in model.state_dict().items():
        if k.startswith("lm_head"):
            continue
        if k.endswith("qkv_proj.weight"):
            for name, part in zip(("q_proj", "k_proj", "v_proj"), v.split(c.qkv_split)):
                state[f"model.{k.replace('qkv_proj', name)}"] = part
        elif k.endswith("gate_up_proj.weight"):
            for name, part in zip(("gate_proj", "up_proj"), v.chunk(2, dim=0)):
                state[f"model.{k.replace('gate_up_proj', name)}"] = part
        else:
            state[f"model.{k}"] = v
    state["lm_head.weight"] = model.lm_head.weight
    missing, unexpected = hf.load_state_dict(state, strict=False)
    if [m for m in missing if "rotary" not in m] or unexpected:
        raise RuntimeError(f"weight mapping mismatch: missing {missing}, unexpected {unexpected}")
    return hf
