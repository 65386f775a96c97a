"""The dashboard in a real (pseudo) terminal: crashes and signals restore the terminal and set the exit status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import subprocess_env

# a dashboard with one deliberate bug: the key x raises from a key handler, which no guard may swallow
BOOM = r"""
import sys
from pathlib import Path
from core.paths import Workspace
from tui.app import NcanvasApp, run_dashboard

class Boom(NcanvasApp):
    CSS_PATH = str(Path(sys.modules["tui.app"].__file__).with_name("app.tcss"))

    def on_key(self, event):
        if event.key == "x":
            raise RuntimeError("boom for the test")

ws = Workspace(sys.argv[1]).ensure()
sys.exit(run_dashboard(Boom(ws, host="pty", gpu_stats=lambda: [], handle_signals=True)))
"""
ALT_SCREEN_OFF = b"\x1b[?1049l"
MOUSE_OFF = b"\x1b[?1000l"


class Terminal:
    """A child process in a 120x40 pseudo-terminal; everything it writes is kept in :attr:`seen`."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        import fcntl
        import pty
        import struct
        import termios

        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.seen = b""

    def read_until(self, pred, timeout: float = 60.0) -> bool:
        import select

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.seen):
                return True
            if select.select([self.master], [], [], 0.05)[0]:
                try:
                    chunk = os.read(self.master, 1 << 16)
                except OSError:  # the child closed the terminal
                    return pred(self.seen)
                if not chunk:
                    return pred(self.seen)
                self.seen += chunk
            elif self.proc.poll() is not None and not select.select([self.master], [], [], 0.2)[0]:
                return pred(self.seen)
        return pred(self.seen)

    def wait(self, timeout: float = 30.0) -> int:
        self.read_until(lambda _: self.proc.poll() is not None, timeout)
        return self.proc.wait(timeout=5)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass


def _env(tmp_path: Path) -> dict[str, str]:
    return dict(subprocess_env(), TERM="xterm-256color", COLORTERM="truecolor", NCANVAS_HOME=str(tmp_path / "ws"))


def _started(seen: bytes) -> bool:
    return b"Jobs" in seen and b"no jobs yet" in seen or b"Quit" in seen


def test_a_crash_restores_the_terminal_says_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    script = tmp_path / "boom.py"  # a file: Textual finds the app's CSS next to the class's source
    script.write_text(BOOM)
    term = Terminal([sys.executable, str(script), str(tmp_path / "ws")], _env(tmp_path))
    try:
        assert term.read_until(_started), term.seen[-2000:]
        time.sleep(0.5)
        os.write(term.master, b"x")
        code = term.wait()
    finally:
        term.close()
    after = term.seen[term.seen.rfind(ALT_SCREEN_OFF):]
    assert code == 1, term.seen[-3000:]
    assert ALT_SCREEN_OFF in term.seen and MOUSE_OFF in term.seen, "alternate screen and mouse reporting left on"
    text = after.decode(errors="replace")
    assert "the dashboard stopped: RuntimeError: boom for the test" in text, text
    assert "Traceback" not in text and "locals" not in text, "one line, not a screenful"
    log = tmp_path / "ws" / "logs" / "dashboard-errors.log"
    assert str(log) in text.replace("\r\n", "").replace("\n", "")
    assert "RuntimeError: boom for the test" in log.read_text() and "Traceback" in log.read_text()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_end_cleanly(tmp_path: Path, sig: int) -> None:
    term = Terminal([sys.executable, "-m", "tui.cli"], _env(tmp_path))
    try:
        assert term.read_until(_started), term.seen[-2000:]
        time.sleep(0.5)
        os.kill(term.proc.pid, sig)
        code = term.wait(timeout=15)
    finally:
        term.close()
    assert code == 128 + sig, (code, term.seen[-2000:])
    assert ALT_SCREEN_OFF in term.seen and MOUSE_OFF in term.seen
    assert b"Traceback" not in term.seen


def test_the_terminal_going_away_ends_the_dashboard(tmp_path: Path) -> None:
    """An SSH connection that drops: the terminal closes (hang-up), the dashboard must not linger."""
    term = Terminal([sys.executable, "-m", "tui.cli"], _env(tmp_path))
    try:
        assert term.read_until(_started), term.seen[-2000:]
        os.close(term.master)
        os.killpg(term.proc.pid, signal.SIGHUP)  # what the kernel sends the session when its terminal hangs up
        code = term.proc.wait(timeout=15)
    finally:
        term.close()
    assert code == 128 + signal.SIGHUP


def test_alt_digit_switches_panes_from_a_text_field_in_a_terminal(tmp_path: Path) -> None:
    """tmux and xterm send alt+3 as ESC 3; inside the Classify pane's image field that typed "£" and stayed."""
    term = Terminal([sys.executable, "-m", "tui.cli"], _env(tmp_path))
    try:
        assert term.read_until(_started), term.seen[-2000:]
        os.write(term.master, b"2")
        assert term.read_until(lambda s: b"enter classifies" in s), term.seen[-2000:]
        mark = len(term.seen)
        os.write(term.master, b"\t\t")  # the pane -> the checkpoint picker -> the image field
        time.sleep(1.0)
        os.write(term.master, b"\x1b3")
        assert term.read_until(lambda s: b"t/T class" in s[mark:], timeout=20), term.seen[mark:].decode(
            errors="replace")[-2000:]
        os.write(term.master, b"\x1b2")  # and back: the field still holds what it held
        assert term.read_until(lambda s: s.count(b"enter classifies") >= 2, timeout=20)
        time.sleep(0.5)
        term.read_until(lambda _: False, timeout=0.5)
    finally:
        term.close()
    assert "£".encode() not in term.seen and "™".encode() not in term.seen, "alt+digit typed a character"
