"""Layering checked by machine: the CLI, the dashboard module and core's light modules never import torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, subprocess_env

LIGHT = ["core.paths", "core.threads", "core.devices", "core.fserrors", "core.strictjson", "core.runrec", "core.metrics", "core.overview", "core.smoothing", "core.atomic", "core.errors", "core.gpu",
         "core.logtext", "core.imageio", "core.render", "core.colormaps", "core.plotpng", "core.curves", "core.explain",
         "core.explain.dataset", "jobs.config", "jobs.kinds", "jobs.locks", "jobs.supervisor", "jobs.runtime",
         "jobs.demo", "jobs.cnn", "jobs.llm", "jobs.gpt2", "jobs.artcnn", "jobs.task", "jobs.lm", "jobs.lmbase", "tui.cli", "tui.cli_vision", "tui.cli_llm",
         "tui.cli_art", "tui.cli_base", "tui.inference", "tui.watcher", "tui.app"]
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
                      "[build_config(k.kind_config(x), {}) for x in k.KINDS]")
    assert not {"torch", "torchvision", "transformers"} & found


def test_help_runs_without_torch() -> None:
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "tui.cli", "--help"], capture_output=True,
                         text=True, env=subprocess_env(), timeout=60)
    assert out.returncode == 0 and "Usage" in out.stdout
    assert "| torch\n" not in out.stderr and " torch\n" not in out.stderr


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_core_imports_neither_jobs_nor_tui() -> None:
    bad = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.split(".")[0] in ("jobs", "tui"))
           for p in (ROOT / "core").rglob("*.py")}
    assert not {k: v for k, v in bad.items() if v}


def test_jobs_never_imports_tui_or_textual() -> None:
    bad = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.split(".")[0] in ("tui", "textual"))
           for p in (ROOT / "jobs").rglob("*.py")}
    assert not {k: v for k, v in bad.items() if v}


def test_cli_modules_form_no_import_cycle() -> None:
    mods = {p.stem: p for p in (ROOT / "tui").glob("cli*.py")}
    graph = {m: {d.split(".")[1] for d in _imports(p) if d.startswith("tui.") and d.split(".")[1] in mods} - {m}
             for m, p in mods.items()}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        return any(n == target or (n not in seen and reaches(n, target, seen | {n})) for n in graph[start])

    assert not [m for m in graph if reaches(m, m, set())]


def test_help_registers_each_train_kind_once_and_version_answers() -> None:
    from jobs.kinds import KINDS

    out = subprocess.run([sys.executable, "-m", "tui.cli", "train", "--help"], capture_output=True, text=True,
                         env=subprocess_env(COLUMNS="100"), timeout=60)
    assert out.returncode == 0, out.stderr
    listed = [ln.split()[0] for ln in out.stdout.splitlines() if ln.startswith("  ") and ln.split()[0] in KINDS]
    assert sorted(listed) == sorted(KINDS)
    ver = subprocess.run([sys.executable, "-m", "tui.cli", "--version"], capture_output=True, text=True,
                         env=subprocess_env(), timeout=60)
    assert ver.returncode == 0 and ver.stdout.startswith("ncanvas ")


def test_shell_completion_completes_subcommands() -> None:
    env = subprocess_env(_NCANVAS_COMPLETE="complete_bash", COMP_WORDS="ncanvas jobs ", COMP_CWORD="2")
    code = "import sys; sys.argv[0] = 'ncanvas'; from tui.cli import main; main()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert {"ls", "show", "stop", "resume"} <= set(out.stdout.split())
