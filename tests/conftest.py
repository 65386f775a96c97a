"""Shared fixtures: temporary workspaces, real MNIST, subprocess environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# No test may reach an outside host: the hub clients (and ``--tokenizer auto``'s probe) stay offline for the whole
# suite, its job subprocesses included (they inherit this environment). Set before anything imports transformers,
# which reads these once.
os.environ["NCANVAS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("NCANVAS_MNIST_DIR", ROOT.parent / "shared" / "data" / "mnist"))


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child processes that must import this checkout's code."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("NCANVAS_HOME", None)
    env.update(extra)
    return env


@pytest.fixture
def ws(tmp_path: Path):
    from core.paths import Workspace

    return Workspace(tmp_path / "ws").ensure()


@pytest.fixture
def mnist_dir() -> Path:
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found in {MNIST_DIR}")
    return MNIST_DIR


@pytest.fixture(autouse=True)
def _isolate_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Tests never write into the checkout's own logs/ or the user's data dir by accident.
    monkeypatch.setenv("NCANVAS_HOME", str(tmp_path / "default-home"))


PYTHON = sys.executable


from tests.slurmhelpers import slurm, sws  # noqa: E402,F401 - the Slurm fixtures (tests/test_slurm*.py)
