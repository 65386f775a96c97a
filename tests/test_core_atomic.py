"""A writer SIGKILLed in the middle of atomic writes never leaves a torn file."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.atomic import atomic_write_json
from tests.conftest import subprocess_env

WRITER = r"""
import sys
from core.atomic import atomic_write_json
path = sys.argv[1]
i = 0
payload = "x" * 200_000  # big enough that a kill often lands mid-write
while True:
    i += 1
    atomic_write_json(path, {"i": i, "payload": payload})
    if i == 1:
        print("ready", flush=True)
"""


def test_sigkill_mid_write_leaves_previous_file_intact(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    atomic_write_json(path, {"i": 0, "payload": ""})
    for trial in range(5):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                                env=subprocess_env())
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(0.05 + 0.03 * trial)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = json.loads(path.read_text())  # parses: never torn
        assert data["i"] >= 1 and (data["i"] == 0 or len(data["payload"]) == 200_000)
    leftovers = [p for p in tmp_path.iterdir() if p.name != "job.json"]
    assert all(p.name.startswith(".job.json.") for p in leftovers)  # only temp files of killed writers


def test_atomic_files_get_the_umask_permissions_of_a_plain_open(tmp_path: Path) -> None:
    import os

    old = os.umask(0o027)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        with open(tmp_path / "plain.json", "w") as f:
            f.write("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == (tmp_path / "plain.json").stat().st_mode & 0o777 == 0o640
    assert not list(tmp_path.glob(".a.json.*"))


# ============================================================================================ output kinds (issue 13.1)


def _read_fifo_in_background(path: Path) -> tuple[object, list[bytes]]:
    import threading

    got: list[bytes] = []

    def read() -> None:
        with open(path, "rb") as f:
            got.append(f.read())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t, got


def test_a_fifo_is_written_through_not_replaced(tmp_path: Path) -> None:
    import os
    import stat

    from core.atomic import atomic_write_bytes, atomic_write_named

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    t, got = _read_fifo_in_background(fifo)
    atomic_write_bytes(fifo, b"hello")
    t.join(10)  # type: ignore[attr-defined]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and got == [b"hello"]
    assert list(tmp_path.iterdir()) == [fifo]  # no temp file left beside it
    t, got = _read_fifo_in_background(fifo)
    atomic_write_named(fifo, lambda tmp: tmp.write_bytes(b"named"))  # writers that only take a file name
    t.join(10)  # type: ignore[attr-defined]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and got == [b"named"]


def test_a_device_node_stays_a_device(tmp_path: Path) -> None:
    import os
    import stat

    import pytest

    from core.atomic import atomic_write_text

    dev = tmp_path / "null"
    try:
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a private /dev/null
    except PermissionError:
        pytest.skip("mknod needs root")
    atomic_write_text(dev, "discarded")
    assert stat.S_ISCHR(os.lstat(dev).st_mode)


def test_a_symlink_keeps_pointing_at_its_written_target(tmp_path: Path) -> None:
    from core.atomic import atomic_write_text

    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "out.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "real" / "later.json")
    atomic_write_text(dangling, "created")
    assert dangling.is_symlink() and (tmp_path / "real" / "later.json").read_text() == "created"


def test_a_folder_is_refused_with_one_line_and_dash_is_stdout(tmp_path: Path, capfdbinary) -> None:
    import pytest

    from core.atomic import atomic_write_bytes
    from core.errors import NcanvasError

    with pytest.raises(NcanvasError, match="is a folder; give a file name"):
        atomic_write_bytes(tmp_path, b"x")
    atomic_write_bytes("-", b"to stdout")
    assert capfdbinary.readouterr().out == b"to stdout"
    assert not Path("-").exists()
