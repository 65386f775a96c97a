"""JSON that strict parsers accept (``JSON.parse``, Python with ``parse_constant``): no bare ``NaN``/``Infinity``.

A non-finite float becomes ``null``, and the object it belongs to gets a ``"nonfinite"`` field naming where each
was and what it was (``{"progress.loss": "nan"}``), so a diverged loss stays visible to a script. No torch.
"""

from __future__ import annotations

import json
import math
from typing import Any

NONFINITE = "nonfinite"


def _clean(value: Any, path: str, found: dict[str, str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        found[path or "value"] = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return None
    if isinstance(value, dict):
        return {k: _clean(v, f"{path}.{k}" if path else str(k), found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def sanitize(obj: Any) -> Any:
    """``obj`` with non-finite floats as None; each top-level object (or each object of a top-level list) that
    held one gets ``"nonfinite": {path: "nan" | "inf" | "-inf"}``."""
    if isinstance(obj, list):
        return [sanitize(item) if isinstance(item, dict) else _clean(item, f"[{i}]", {}) for i, item in
                enumerate(obj)]
    found: dict[str, str] = {}
    out = _clean(obj, "", found)
    if found and isinstance(out, dict):
        out[NONFINITE] = found
    return out


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`sanitize`'d ``obj`` (other types by ``str``), never a bare NaN."""
    kwargs.setdefault("default", str)
    return json.dumps(sanitize(obj), allow_nan=False, **kwargs)
