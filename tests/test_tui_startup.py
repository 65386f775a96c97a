"""First frame fast and without torch: the dashboard imports nothing heavy before it is on screen."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import subprocess_env

PROBE = r"""
import asyncio, json, sys, time
t0 = time.perf_counter()
from core.paths import Workspace
from tui.app import NcanvasApp

async def main():
    app = NcanvasApp(Workspace(sys.argv[1]).ensure(), host="probe", gpu_stats=lambda: [])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        first = time.perf_counter() - t0
        heavy = [m for m in ("torch", "torchvision", "transformers") if m in sys.modules]
        print(json.dumps({"first_frame_s": first, "heavy": heavy}))

asyncio.run(main())
"""


def test_first_frame_without_torch(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "ws")], capture_output=True, text=True,
                         env=subprocess_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], f"imported before the first frame: {result['heavy']}"
    # the goal is < 1 s on this machine (measured ~0.5 s); the bound is loose for loaded CI runners
    assert result["first_frame_s"] < 5.0, result
    print(f"first frame after {result['first_frame_s']:.2f}s")
