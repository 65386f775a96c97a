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
