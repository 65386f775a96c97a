"""The table of job kinds. Light: kind modules keep torch out of module scope, so this imports no torch."""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType

from core.errors import NcanvasError


@dataclass(frozen=True)
class KindSpec:
    name: str
    module: str  # run as `python -m <module> --run-dir ...`
    description: str
    uses_gpu: bool = True  # False: always runs on the CPU (no GPU slot needed)


KINDS: dict[str, KindSpec] = {
    spec.name: spec
    for spec in (
        KindSpec("cnn", "jobs.cnn", "Small CNN on MNIST / Fashion-MNIST / CIFAR-10"),
        KindSpec("llm", "jobs.llm", "From-scratch art-expert transformer (Llama-style, ~56M)"),
        KindSpec("gpt2", "jobs.gpt2", "GPT-2 fine-tune on the explanation dataset"),
        KindSpec("artcnn", "jobs.artcnn", "Multi-head art classifier (artist / style / genre)"),
        KindSpec("demo", "jobs.demo", "Tiny regression job for trying ncanvas out (CPU, seconds)", uses_gpu=False),
    )
}


def get_kind(kind: str) -> KindSpec:
    try:
        return KINDS[kind]
    except KeyError:
        raise NcanvasError(f"unknown job kind {kind!r}; kinds: {', '.join(available_kinds())}") from None


def kind_module(kind: str) -> ModuleType:
    spec = get_kind(kind)
    try:
        return importlib.import_module(spec.module)
    except ModuleNotFoundError as e:
        if e.name == spec.module:
            raise NcanvasError(f"job kind {kind!r} is not installed in this build") from None
        raise


def kind_config(kind: str) -> type:
    """The kind's config dataclass (reads the light kind module)."""
    return kind_module(kind).CONFIG  # type: ignore[no-any-return]


def available_kinds() -> list[str]:
    """Kinds whose entry module exists in this build."""
    out = []
    for name, spec in KINDS.items():
        if importlib.util.find_spec(spec.module) is not None:
            out.append(name)
    return out
