"""Job configs as dataclasses: one source for CLI options, the dashboard's form, validation and job.json.

Each kind module (``jobs/<kind>.py``) defines a ``@dataclass`` whose fields use :func:`opt`. Kind modules stay
light at module scope (no torch), so the CLI and the dashboard can read configs without importing torch.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from core.errors import NcanvasError


def opt(default: Any, help: str, *, choices: tuple[str, ...] | None = None,
        min: float | None = None, max: float | None = None) -> Any:
    """A config field with a help line, optional choices and numeric bounds."""
    meta = {"help": help, "choices": choices, "min": min, "max": max}
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

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def option_specs(cls: type) -> list[OptionSpec]:
    """The options of a config dataclass, with resolved types."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)  # type: ignore[misc]
        typ = hints[f.name]
        origin = typing.get_origin(typ)
        if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
            args = [a for a in typing.get_args(typ) if a is not type(None)]
            typ = args[0]
        out.append(OptionSpec(f.name, typ, default, f.metadata.get("help", ""), f.metadata.get("choices"),
                              f.metadata.get("min"), f.metadata.get("max")))
    return out


def check_bounds(cfg: Any) -> None:
    """Validate choices and numeric bounds of every field; raise one clear :class:`NcanvasError`."""
    for spec in option_specs(type(cfg)):
        value = getattr(cfg, spec.name)
        if value is None:
            continue
        if spec.choices and value not in spec.choices:
            raise NcanvasError(f"{spec.flag} must be one of {', '.join(spec.choices)}; got {value!r}")
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


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
