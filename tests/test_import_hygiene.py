"""Layering checked by machine: the CLI, the dashboard module and core's light modules never import torch."""

import subprocess
import sys

import pytest

from tests.conftest import subprocess_env

LIGHT = ["core.paths", "core.runrec", "core.metrics", "core.overview", "core.smoothing", "core.atomic", "core.errors", "core.gpu",
         "core.logtext", "core.imageio", "core.render", "core.colormaps", "core.plotpng", "core.curves", "core.explain",
         "core.explain.dataset", "jobs.config", "jobs.kinds", "jobs.locks", "jobs.supervisor", "jobs.runtime",
         "jobs.demo", "jobs.cnn", "jobs.llm", "jobs.gpt2", "jobs.artcnn", "tui.cli", "tui.cli_vision", "tui.cli_llm",
         "tui.cli_art", "tui.inference", "tui.watcher", "tui.app"]
HEAVY = ("torch", "torchvision", "transformers", "textual_plotext")


def _imported(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=subprocess_env(),
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


@pytest.mark.parametrize("module", LIGHT)
def test_light_module_imports_without_torch(module: str) -> None:
    assert not {"torch", "torchvision", "transformers"} & _imported(f"import {module}")


def test_cli_with_every_command_registered_imports_no_torch() -> None:
    # the dashboard's new-job form validates a config (build_config) on the UI thread: no torch there either
    found = _imported("from tui.cli import app\nimport jobs.kinds as k\nfrom jobs.config import build_config\n"
                      "[build_config(k.kind_config(x), {}) for x in k.available_kinds()]")
    assert not {"torch", "torchvision", "transformers"} & found


def test_help_runs_without_torch() -> None:
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "tui.cli", "--help"], capture_output=True,
                         text=True, env=subprocess_env(), timeout=60)
    assert out.returncode == 0 and "Usage" in out.stdout
    assert "| torch\n" not in out.stderr and " torch\n" not in out.stderr
