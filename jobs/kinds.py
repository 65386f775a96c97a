"""The table of job kinds: every fact about a kind in one place. Light: no torch.

A kind is a small task object in ``jobs/<kind>.py`` (its config dataclass ``CONFIG`` and a ``Task``; the module
keeps torch out of module scope) plus the :class:`KindSpec` below. The CLI, the dashboard (table, curves, new-job
form, panes) and the supervisor read these facts; nothing else keeps a per-kind table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from core.errors import NcanvasError


@dataclass(frozen=True)
class KindSpec:
    """What the rest of ncanvas needs to know about a job kind.

    Attributes:
        name: the kind's name (``ncanvas train <name>``, the job id prefix).
        module: run as ``python -m <module> --run-dir ...``.
        description: one line for ``--help``, the new-job form and ``jobs show``.
        metric: the headline metric key a job logs on its val (else test) rows, e.g. ``acc`` or ``ppl``:
            the jobs table shows ``val_<metric>`` and the dashboard's second plot draws it.
        higher_is_better: the direction of ``metric`` (accuracy up, perplexity down).
        log_metric: draw the metric on a log axis by default (perplexity spans orders of magnitude).
        throughput: the key of the throughput a job logs per train row (``img_s``, ``tok_s``, ``samples_s``).
        throughput_unit: how the table writes that number (``img/s``).
        ddp: the kind trains data-parallel under ``--gpus N`` (torchrun); other kinds refuse ``--gpus > 1``.
        uses_gpu: False for kinds that always run on the CPU (no GPU slot, no ``--gpu``).
        pane: the dashboard pane that uses its checkpoints (``classify``, ``explain``, ``analyze``), if any.
        panels: the panels of ``training_curves.png``: title -> series keys (``split/metric``).
    """

    name: str
    module: str
    description: str
    metric: str | None
    higher_is_better: bool
    throughput: str
    throughput_unit: str
    ddp: bool = True
    uses_gpu: bool = True
    log_metric: bool = False
    pane: str | None = None
    panels: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def headline(self) -> str | None:
        """The progress key the jobs table shows (``val_acc``)."""
        return f"val_{self.metric}" if self.metric else None


_LM_PANELS = (("loss", ("train/loss", "val/loss")), ("val perplexity", ("val/ppl",)),
              ("val faithfulness (greedy)", ("val/faith", "val/faith_numbers", "val/faith_low_confidence",
                                             "val/faith_style_mismatch")))

KINDS: dict[str, KindSpec] = {
    spec.name: spec
    for spec in (
        KindSpec("cnn", "jobs.cnn", "Small CNN on MNIST / Fashion-MNIST / CIFAR-10", metric="acc",
                 higher_is_better=True, throughput="img_s", throughput_unit="img/s", pane="classify",
                 panels=(("loss", ("train/loss", "val/loss", "test/loss")), ("accuracy", ("val/acc", "test/acc")))),
        KindSpec("llm", "jobs.llm", "From-scratch art-expert transformer (Llama-style: RoPE, GQA, RMSNorm, "
                 "SwiGLU; ~56M)", metric="ppl", higher_is_better=False, log_metric=True, throughput="tok_s",
                 throughput_unit="tok/s", pane="explain", panels=_LM_PANELS),
        KindSpec("gpt2", "jobs.gpt2", "GPT-2 fine-tune on the explanation dataset (gpt2, distilgpt2 or a local "
                 "model folder)", metric="ppl", higher_is_better=False, log_metric=True, throughput="tok_s",
                 throughput_unit="tok/s", pane="explain", panels=_LM_PANELS),
        KindSpec("artcnn", "jobs.artcnn", "Multi-head art classifier (artist / style / genre) on a WikiArt-layout "
                 "set", metric="acc", higher_is_better=True, throughput="img_s", throughput_unit="img/s",
                 pane="analyze", panels=(("loss", ("train/loss", "val/loss")),
                                         ("val accuracy (mean of heads)", ("val/acc", "val/top5")))),
        KindSpec("demo", "jobs.demo", "Tiny regression job for trying ncanvas out (CPU, seconds)", metric=None,
                 higher_is_better=False, throughput="samples_s", throughput_unit="samples/s", uses_gpu=False,
                 panels=(("loss", ("train/loss", "val/loss")),)),
    )
}


def get_kind(kind: str) -> KindSpec:
    try:
        return KINDS[kind]
    except KeyError:
        raise NcanvasError(f"unknown job kind {kind!r}; kinds: {', '.join(KINDS)}") from None


def kind_module(kind: str) -> ModuleType:
    """The kind's light module (its config dataclass and task; torch is imported only when the task runs)."""
    return importlib.import_module(get_kind(kind).module)


def kind_config(kind: str) -> type:
    """The kind's config dataclass (reads the light kind module)."""
    return kind_module(kind).CONFIG
