"""`ncanvas web`: a browser session ends when its connection drops without a close frame, and with its server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import subprocess_env

pytest.importorskip("textual_serve")

# a browser tab: opens the websocket, reads the first frames, says "connected", then goes silent (no close frame)
CLIENT = r"""
import asyncio, sys, time
import aiohttp

async def main(port):
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(f"http://127.0.0.1:{port}/ws?width=100&height=30", autoping=False)
        got = 0
        while got < 5000:
            msg = await asyncio.wait_for(ws.receive(), 60)
            if msg.type != aiohttp.WSMsgType.BINARY:
                raise SystemExit(f"unexpected {msg.type}")
            got += len(msg.data)
        print("connected", flush=True)
        time.sleep(3600)  # the loop blocks: no pong, no close frame, no FIN

asyncio.run(main(int(sys.argv[1])))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sessions(home: Path) -> list[int]:
    """Dashboard session processes on this workspace (not the server: its command line says `web`)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(home).encode() in cmd and b"tui.cli" in cmd and b"web" not in cmd:
            out.append(int(pid))
    return out


def _wait(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s: {what}")


@pytest.fixture
def server(tmp_path: Path):
    home, port = tmp_path / "ws", _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "--home", str(home), "web", "--host", "127.0.0.1",
                             "--port", str(port)], env=subprocess_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    _wait(lambda: _connectable(port), 30, "server listening")
    clients: list[subprocess.Popen] = []

    def connect() -> subprocess.Popen:
        c = subprocess.Popen([sys.executable, "-c", CLIENT, str(port)], env=subprocess_env(), stdout=subprocess.PIPE,
                             text=True)
        clients.append(c)
        assert c.stdout is not None and c.stdout.readline().strip() == "connected"
        _wait(lambda: _sessions(home), 30, "a session process")
        return c

    yield proc, home, connect
    for c in clients:
        c.kill()
        c.wait()
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for pid in _sessions(home):  # whatever a failed test left
        os.kill(pid, signal.SIGKILL)


def _connectable(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_tab_that_goes_silent_or_vanishes_leaves_no_session(server) -> None:
    proc, home, connect = server
    silent = connect()
    silent.send_signal(signal.SIGSTOP)  # a laptop lid closed: no close frame, no FIN, no pongs
    gone = connect()
    gone.kill()  # a browser killed: the kernel closes the socket, no websocket close frame
    _wait(lambda: len(_sessions(home)) <= 1, 15, "the killed tab's session ended")
    _wait(lambda: not _sessions(home), 15, "the silent tab's session ended (heartbeat)")
    silent.kill()
    assert proc.poll() is None, "the server goes on"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_sessions_end_with_the_server(server, how: int) -> None:
    proc, home, connect = server
    connect()
    proc.send_signal(how)  # the server alone: its sessions must notice
    _wait(lambda: not _sessions(home), 10, f"sessions gone after the server got {signal.Signals(how).name}")
    if how == signal.SIGTERM:
        assert proc.wait(timeout=15) is not None
