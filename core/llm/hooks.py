"""What differs between the explainer kinds: model + tokenizer construction, checkpoint contents, HF export.

``OwnLMHooks`` builds :class:`core.llm.model.ArtExpertLM`; ``GPT2Hooks`` wraps ``transformers.GPT2LMHeadModel``.
A checkpoint of either kind carries its tokenizer JSON (and for GPT-2 its HF config), so it loads offline.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from core.explain import PROMPT_FORMAT
from core.llm.data import example_text
from core.llm.model import ArtExpertLM, LMConfig
from core.llm.tokenizer import TextTokenizer, build_tokenizer, from_hf, offline

if TYPE_CHECKING:
    from transformers import PreTrainedModel

BPE_SAMPLE = 20_000  # pairs the corpus BPE is trained on: the vocabulary is closed, more adds nothing


def records_prompt_format(records: dict[str, list[dict[str, Any]]]) -> int:
    """The prompt format version of the pairs a model is trained on (a ``--data`` folder written by an older
    generator holds version 1 prompts): what its checkpoints record, so inference gives it that format."""
    from core.explain import PROMPT_FORMAT, parse_prompt

    for rec in records.get("train", [])[:1]:
        parsed = parse_prompt(rec["prompt"])
        return parsed[1] if parsed else PROMPT_FORMAT
    return PROMPT_FORMAT


class LMHooks:
    """Base class: one subclass per job kind overrides these."""

    prompt_format = PROMPT_FORMAT  # set by ``build`` from the training pairs

    def build(self, cfg: Any, records: dict[str, list[dict[str, Any]]],
              ckpt: dict[str, Any] | None) -> tuple[torch.nn.Module, TextTokenizer]:
        raise NotImplementedError

    def arch(self, model: torch.nn.Module) -> str:
        raise NotImplementedError

    def logits(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model(x)

    def config_extra(self, model: torch.nn.Module) -> dict[str, Any]:
        return {}

    def extra(self, model: torch.nn.Module, tok: TextTokenizer) -> dict[str, Any]:
        return {"tokenizer_json": tok.to_json(), "eos_token": tok.eos_token, "tokenizer_name": tok.name,
                "prompt_format": self.prompt_format}

    def on_best(self, model: torch.nn.Module, tok: TextTokenizer, ckpt_dir: Path) -> None:
        """Called (rank 0) after best_model.pt was written."""


def same_on_every_rank(make: Any) -> TextTokenizer:
    """``make()`` on rank 0, and the very same tokenizer on the other ranks of a torchrun job (sent as JSON).

    Each rank building its own could disagree: ``auto`` asks the hub, which may answer one rank and not
    another, and DDP would then fail on mismatched embedding shapes."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return make()
    tok = make() if dist.get_rank() == 0 else None
    box: list[Any] = [(tok.to_json(), tok.eos_token, tok.name) if tok is not None else None]
    dist.broadcast_object_list(box, src=0)  # every rank's box now holds rank 0's tuple
    text, eos, name = box[0]
    return tok if tok is not None else TextTokenizer.from_json(text, eos, name)


def tokenizer_from_ckpt(ckpt: dict[str, Any]) -> TextTokenizer:
    ex = ckpt["extra"]
    return TextTokenizer.from_json(ex["tokenizer_json"], ex.get("eos_token", "<|endoftext|>"),
                                   ex.get("tokenizer_name", "bpe"))


def _own(model: torch.nn.Module) -> ArtExpertLM:
    """The model ``OwnLMHooks.build`` made (the task keeps it as a plain Module)."""
    return cast(ArtExpertLM, model)


def _hf(model: torch.nn.Module) -> PreTrainedModel:
    """The model ``GPT2Hooks.build`` made (the task keeps it as a plain Module)."""
    return cast("PreTrainedModel", model)


class OwnLMHooks(LMHooks):
    def build(self, cfg: Any, records: dict[str, list[dict[str, Any]]],
              ckpt: dict[str, Any] | None) -> tuple[torch.nn.Module, TextTokenizer]:
        self.prompt_format = records_prompt_format(records)
        if ckpt is not None:
            tok = tokenizer_from_ckpt(ckpt)
            model = ArtExpertLM(LMConfig(**ckpt["config"]["model"]))
            model.load_state_dict(ckpt["model"])
            return model, tok
        texts = (r["prompt"] + example_text(r["explanation"]) for r in records["train"][:BPE_SAMPLE])
        tok = same_on_every_rank(lambda: build_tokenizer(cfg.tokenizer, texts, cfg.bpe_vocab))
        lm_cfg = LMConfig(vocab_size=tok.vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer,
                          n_head=cfg.n_head, n_kv_head=cfg.n_kv_head, d_model=cfg.d_model, d_ff=cfg.d_ff)
        return ArtExpertLM(lm_cfg), tok

    def arch(self, model: torch.nn.Module) -> str:
        c = _own(model).cfg
        return f"art-expert-lm-{c.n_layer}x{c.d_model}"

    def config_extra(self, model: torch.nn.Module) -> dict[str, Any]:
        return {"model": _own(model).cfg.to_dict()}


class GPT2Hooks(LMHooks):
    def build(self, cfg: Any, records: dict[str, list[dict[str, Any]]],
              ckpt: dict[str, Any] | None) -> tuple[torch.nn.Module, TextTokenizer]:
        self.prompt_format = records_prompt_format(records)
        if ckpt is not None:  # resume from our own checkpoint: no hub, no base folder needed
            return gpt2_from_ckpt(ckpt), tokenizer_from_ckpt(ckpt)
        from transformers import GPT2LMHeadModel

        from core.errors import NcanvasError

        tok = from_hf(cfg.base)
        try:
            model = GPT2LMHeadModel.from_pretrained(cfg.base, local_files_only=offline())
        except Exception as e:  # noqa: BLE001 - hub, network and format errors: one line for the log
            raise NcanvasError(f"cannot load GPT-2 base {cfg.base!r}: {str(e).splitlines()[0][:160]}") from None
        if model.config.vocab_size < tok.vocab_size:
            raise NcanvasError(f"{cfg.base}: tokenizer has {tok.vocab_size} tokens, model only "
                               f"{model.config.vocab_size}")
        if model.config.n_positions < cfg.block_size:
            raise NcanvasError(f"{cfg.base} has {model.config.n_positions} positions; use --block-size "
                               f"{model.config.n_positions} or less")
        model.config.use_cache = False
        return model, tok

    def arch(self, model: torch.nn.Module) -> str:
        c = _hf(model).config
        return f"gpt2-hf-{c.n_layer}x{c.n_embd}"

    def logits(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model(input_ids=x, use_cache=False).logits

    def extra(self, model: torch.nn.Module, tok: TextTokenizer) -> dict[str, Any]:
        return dict(super().extra(model, tok), hf_config=_hf(model).config.to_json_string())

    def on_best(self, model: torch.nn.Module, tok: TextTokenizer, ckpt_dir: Path) -> None:
        save_hf_dir(model, tok, ckpt_dir / "best_model_hf", self.prompt_format)


def gpt2_from_ckpt(ckpt: dict[str, Any]) -> torch.nn.Module:
    import json

    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(**json.loads(ckpt["extra"]["hf_config"])))
    model.load_state_dict(ckpt["model"])
    return model


def save_hf_dir(model: Any, tok: TextTokenizer, out: Path, prompt_format: int = PROMPT_FORMAT) -> Path:
    """``save_pretrained`` of model and tokenizer into ``out``, replaced as a whole (a reader never sees half),
    with ``ncanvas.json`` saying which prompt format the model reads.

    Training runs with ``use_cache=False`` (no cache to build on a full-sequence forward); the exported config says
    ``use_cache=True``, so plain ``generate`` on the folder decodes with a cache. The model's own config is put back
    right after, so training is unchanged."""
    import json

    from transformers import PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-epoch progress bar would only clutter stdout.log
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    training_use_cache = model.config.use_cache
    model.config.use_cache = True
    try:
        model.save_pretrained(tmp)
    finally:
        model.config.use_cache = training_use_cache
    PreTrainedTokenizerFast(tokenizer_object=tok.tok, eos_token=tok.eos_token).save_pretrained(tmp)
    (tmp / "ncanvas.json").write_text(json.dumps({"prompt_format": prompt_format}) + "\n", encoding="utf-8")
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return out
