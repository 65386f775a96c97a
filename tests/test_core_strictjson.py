"""Issue 13.12: every --json output parses under strict parsers; a non-finite value is null and named."""

from __future__ import annotations

import json

import pytest

from core.strictjson import dumps


def _strict(token: str) -> None:
    raise ValueError(f"bare {token}")


def test_non_finite_values_become_null_and_are_named_per_object() -> None:
    rows = [{"id": "a", "progress": {"loss": float("nan"), "acc": 0.5}, "curve": [1.0, float("inf")]},
            {"id": "b", "progress": {"loss": 0.1}}]
    out = json.loads(dumps(rows), parse_constant=_strict)
    assert out[0] == {"id": "a", "progress": {"loss": None, "acc": 0.5}, "curve": [1.0, None],
                      "nonfinite": {"progress.loss": "nan", "curve[1]": "inf"}}
    assert out[1] == {"id": "b", "progress": {"loss": 0.1}}  # no field where nothing was replaced
    one = json.loads(dumps({"heat": [[0.0, float("-inf")]]}), parse_constant=_strict)
    assert one == {"heat": [[0.0, None]], "nonfinite": {"heat[0][1]": "-inf"}}


def test_a_cli_json_output_with_nan_parses_strictly(tmp_path) -> None:
    import torch
    from typer.testing import CliRunner

    from core.checkpoint import make_checkpoint, save_checkpoint
    from tui.cli import app

    ck = save_checkpoint(make_checkpoint(kind="demo", arch="mlp", config={"lr": float("nan")},
                                         model=torch.nn.Linear(2, 1).state_dict(), best_metric=float("nan")),
                         tmp_path / "x.pt")
    res = CliRunner().invoke(app, ["ckpt", "inspect", str(ck), "--json"])
    info = json.loads(res.stdout, parse_constant=_strict)
    assert info["best_metric"] is None and info["nonfinite"] == {"best_metric": "nan", "config.lr": "nan"}
    with pytest.raises(ValueError):
        json.loads(json.dumps({"x": float("nan")}), parse_constant=_strict)  # what plain json.dumps wrote
