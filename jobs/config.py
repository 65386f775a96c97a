"""Job configs as dataclasses: one source for CLI options, the dashboard's form, validation and job.json.

Each kind module (``jobs/<kind>.py``) defines a ``@dataclass`` whose fields use :func:`opt`. Kind modules stay
light at module scope (no torch), so the CLI and the dashboard can read configs without importing torch.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.errors import NcanvasError

INT_LIMIT = 2**31 - 1  # the bound of an int option without its own: seeds and counts beyond it overflow torch/numpy
OR_NAME = "or-name"  # a path option that may also name something that is not a file (``--base gpt2``)


def opt(default: Any, help: str, *, choices: tuple[str, ...] | None = None,
        min: float | None = None, max: float | None = None, path: bool | str = False) -> Any:
    """A config field with a help line, optional choices and numeric bounds.

    ``path=True`` marks a file or folder the job reads: at submit time it is made absolute against the caller's
    working directory (a job runs in ``logs/<id>``) and must exist (:func:`absolute_paths`). ``path="or-name"``
    does the same for values that look like a path (or exist), and leaves a plain name (a hub model) alone."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "path": path}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class OptionSpec:
    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] | None
    min: float | None
    max: float | None
    path: bool | str = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def option_specs(cls: type) -> list[OptionSpec]:
    """The options of a config dataclass, with resolved types."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)
        typ = hints[f.name]
        origin = typing.get_origin(typ)
        if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
            args = [a for a in typing.get_args(typ) if a is not type(None)]
            typ = args[0]
        out.append(OptionSpec(f.name, typ, default, f.metadata.get("help", ""), f.metadata.get("choices"),
                              f.metadata.get("min"), f.metadata.get("max"), f.metadata.get("path", False)))
    return out


def check_bounds(cfg: Any) -> None:
    """Validate choices and numeric bounds of every field; raise one clear :class:`NcanvasError`."""
    for spec in option_specs(type(cfg)):
        value = getattr(cfg, spec.name)
        if value is None:
            continue
        if spec.choices and value not in spec.choices:
            raise NcanvasError(f"{spec.flag} must be one of {', '.join(spec.choices)}; got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise NcanvasError(f"{spec.flag} must be a finite number; got {value}")
        if isinstance(value, int) and not isinstance(value, bool) and spec.max is None and abs(value) > INT_LIMIT:
            raise NcanvasError(f"{spec.flag} must be at most {INT_LIMIT}; got {value}")
        if spec.min is not None and value < spec.min:
            raise NcanvasError(f"{spec.flag} must be >= {spec.min}; got {value}")
        if spec.max is not None and value > spec.max:
            raise NcanvasError(f"{spec.flag} must be <= {spec.max}; got {value}")


def build_config(cls: type, values: dict[str, Any]) -> Any:
    """Make a config from a dict (job.json, the CLI, the form): unknown keys refused, types coerced, validated."""
    specs = {s.name: s for s in option_specs(cls)}
    unknown = set(values) - set(specs)
    if unknown:
        raise NcanvasError(f"unknown option(s) for {cls.__name__}: {', '.join(sorted(unknown))}")
    values = with_preset(cls, values)
    kwargs = {}
    for name, value in values.items():
        spec = specs[name]
        if value is not None and spec.type in (int, float, str, bool) and not isinstance(value, spec.type):
            try:
                if spec.type is bool and isinstance(value, str):
                    value = value.strip().lower() in ("1", "true", "yes", "on")
                elif spec.type is int and isinstance(value, float) and not value.is_integer():
                    raise ValueError(value)
                else:
                    value = spec.type(value)
            except (TypeError, ValueError):
                raise NcanvasError(f"{spec.flag} expects {spec.type.__name__}; got {value!r}") from None
        kwargs[name] = value
    cfg = cls(**kwargs)
    check_bounds(cfg)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg


def with_preset(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` over the preset they name (``values["preset"]``, for a config class with ``PRESETS``): every
    option ``values`` holds wins, the preset fills the rest. The caller passes only what the user gave (the CLI
    drops options left at their defaults), so an option given explicitly wins even at its default value."""
    presets = getattr(cls, "PRESETS", None)
    name = values.get("preset")
    if not presets or name in (None, "none"):
        return values
    if name not in presets:
        raise NcanvasError(f"--preset must be one of none, {', '.join(presets)}; got {name!r}")
    return {**presets[name], **values}


def absolute_paths(cls: type, values: dict[str, Any], cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """``values`` with every path option (``opt(path=...)``) made absolute against ``cwd`` (default: the current
    directory), ``~`` expanded; a path that does not exist is one :class:`NcanvasError`. Called where a job is
    submitted: the job itself runs in ``logs/<id>``, where a relative path would mean something else."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    out = dict(values)
    for spec in option_specs(cls):
        value = out.get(spec.name)
        if not spec.path or not isinstance(value, str) or not value.strip():
            continue
        given = Path(value).expanduser()
        full = Path(os.path.abspath(base / given))
        if spec.path == OR_NAME and not full.exists() and not _looks_like_path(value):
            continue  # a name (e.g. a hub model), not a file
        if not full.exists():
            where = "" if str(full) == value else f" ({full})"
            raise NcanvasError(f"{spec.flag} {value}: no such file or folder{where}")
        out[spec.name] = str(full)
    return out


def _looks_like_path(value: str) -> bool:
    return os.sep in value or value.startswith((".", "~"))


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


@dataclass
class LoopConfig:
    """The options the training loop owns (:mod:`jobs.loop`), shared by every kind: a feature of the loop is an
    option of every kind at once. A kind's config subclasses this and may redeclare a field to change its default
    or help line; its own fields follow."""

    epochs: int = opt(10, "passes over the training set", min=1, max=10_000)
    batch_size: int = opt(32, "examples per micro-batch on each process (DDP: the global batch is N times this)",
                          min=1, max=65_536)
    lr: float = opt(1e-3, "peak learning rate", min=0.0, max=10.0)
    grad_accum: int = opt(1, "micro-batches per optimizer step", min=1, max=1024)
    grad_clip: float = opt(0.0, "clip the gradient norm to this (0: off)", min=0.0, max=1e6)
    amp: bool = opt(True, "mixed precision on CUDA: bf16 where the GPU has it, else fp16 + grad scaling")
    compile: bool = opt(False, "torch.compile the model (CUDA only)")
    patience: int = opt(0, "early stopping: evaluations without a better selection metric (0: off)", min=0,
                        max=100_000)
    eval_every: int = opt(0, "also evaluate every N optimizer steps inside an epoch (0: at epoch ends only)",
                          min=0)
    checkpoint_every: int = opt(0, "also save latest.pt every N optimizer steps (0: at evaluations only)", min=0)
    save_every_epoch: bool = opt(False, "also keep epoch_<n>.pt after every epoch")
    max_steps: int = opt(0, "stop after this many optimizer steps in total (0: the full schedule)", min=0)
    on_nan: str = opt("stop", "a non-finite loss or gradient: stop (keeping the last finite latest.pt) or "
                      "skip-batch (at most 10 in a row)", choices=("stop", "skip-batch"))
    cpu_threads: int = opt(0, "torch CPU threads (0: torch's default)", min=0, max=256)
    seed: int = opt(0, "random seed (data order, initialisation)", min=0)


LOOP_OPTIONS = frozenset(f.name for f in fields(LoopConfig))
