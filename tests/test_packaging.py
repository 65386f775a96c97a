"""A regular (non-editable) install carries every code module: the wheel is built and imported on its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_every_module_and_imports_without_the_checkout(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a clean copy: setuptools would reuse a stale build/ of the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "logs",
                                                             "checkpoints", "data", "__pycache__", ".*_cache"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("ncanvas-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for pkg in ("core", "jobs", "tui") for p in (ROOT / pkg).rglob("*")
               if p.suffix in (".py", ".tcss") and "__pycache__" not in p.parts}
    assert sources - names == set(), "left out of the wheel"
    assert not {n for n in names if n.split("/")[0] in ("tests", "bench", "logs", "checkpoints", "docs")}
    assert "ncanvas = tui.cli:main" in zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # -S: no .pth files, so the editable install of this checkout cannot answer; the wheel's copy must
    probe = ("import sys, tui.app, tui.panes, tui.screens.help, tui.widgets.plots, core.vision.api, core.llm.model, "
             "core.art.api, core.explain.dataset, jobs.cnn; "
             "from importlib.resources import files; assert files('tui').joinpath('app.tcss').is_file(); "
             "print(tui.app.__file__)")
    env = {"PYTHONPATH": f"{site}:{sysconfig.get_paths()['purelib']}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().startswith(str(site))
