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


def _first_frame_in_a_terminal(argv: list[str], env: dict[str, str], timeout: float = 60.0) -> tuple[float, int]:
    """Seconds from spawning ``argv`` in a 120x40 pseudo-terminal to its first frame on screen (the header and
    the Jobs tab drawn), then ``q``; and the exit code."""
    import fcntl
    import os
    import pty
    import select
    import signal
    import struct
    import termios
    import time

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    seen, took = b"", None
    try:
        while time.perf_counter() - t0 < timeout and proc.poll() is None:
            if not select.select([master], [], [], 0.02)[0]:
                continue
            try:
                seen += os.read(master, 1 << 16)
            except OSError:
                break
            if took is None and b"ncanvas" in seen and b"Jobs" in seen:
                took = time.perf_counter() - t0
                os.write(master, b"q")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(master)
    assert took is not None, seen[-2000:].decode(errors="replace")
    return took, proc.returncode


def test_ncanvas_command_to_first_frame_in_a_terminal(tmp_path: Path) -> None:
    # the whole path a user waits for: interpreter start, the CLI, the app, the first frame in a real (pseudo)
    # terminal; measured ~1 s on the 2-core dev machine when idle; the bound is loose for loaded CI runners
    env = dict(subprocess_env(), TERM="xterm-256color", COLORTERM="truecolor", NCANVAS_HOME=str(tmp_path / "ws"))
    took, code = _first_frame_in_a_terminal([sys.executable, "-m", "tui.cli"], env)
    assert code == 0, "q quits cleanly"
    assert took < 8.0
    print(f"ncanvas to first frame: {took:.2f}s")
