"""CLI skeleton through typer's CliRunner: home, listing, show, ckpt inspect, one-line errors."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.runrec import JobRecord, write_record
from tui.cli import app

runner = CliRunner()


def invoke(ws_root: Path, *args: str):
    return runner.invoke(app, ["--home", str(ws_root), *args])


def test_home_prints_workspace(tmp_path: Path) -> None:
    res = invoke(tmp_path, "home")
    assert res.exit_code == 0 and res.stdout.strip() == str(tmp_path.resolve())


def test_home_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NCANVAS_HOME", str(tmp_path / "envhome"))
    res = runner.invoke(app, ["home"])
    assert res.stdout.strip() == str((tmp_path / "envhome").resolve())


def test_jobs_ls_empty_and_json(ws) -> None:
    res = invoke(ws.root, "jobs", "ls")
    assert res.exit_code == 0 and "no jobs yet" in res.stdout
    run = ws.run("cnn-0001").make()
    write_record(run.job_json, JobRecord(id="cnn-0001", kind="cnn", state="finished", config={"lr": 0.1},
                                         progress={"step": 10, "total_steps": 10, "loss": 0.25, "val_acc": 0.98}))
    res = invoke(ws.root, "jobs", "ls", "--json")
    data = json.loads(res.stdout)
    assert data[0]["id"] == "cnn-0001" and data[0]["state"] == "finished"
    res = invoke(ws.root, "jobs", "ls")
    assert "cnn-0001" in res.stdout and "val_acc=0.98" in res.stdout
    res = invoke(ws.root, "jobs", "show", "cnn-0001")
    assert res.exit_code == 0 and "lr=0.1" in res.stdout
    res = invoke(ws.root, "jobs", "show", "cnn-0001", "--json")
    assert json.loads(res.stdout)["config"] == {"lr": 0.1}


@pytest.mark.parametrize("args,msg", [
    (["jobs", "show", "../../etc"], "invalid job id"),
    (["jobs", "show", "nope-0001"], "no job 'nope-0001'"),
    (["jobs", "stop", "nope-0001"], "no job"),
    (["logs", "nope-0001"], "no job"),
    (["train", "demo", "--epochs", "0"], "--epochs must be >= 1"),
    (["train", "demo", "--name", "Bad/Id"], "invalid job id"),
    (["train", "demo", "--after", "ghost-0001"], "no job 'ghost-0001'"),
])
def test_errors_are_one_line_with_nonzero_exit(ws, args: list[str], msg: str) -> None:
    res = invoke(ws.root, *args)
    assert res.exit_code != 0
    assert msg in res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert not list(ws.logs.glob("demo-*"))  # refused before anything was created


@pytest.mark.parametrize(("args", "msg"), [
    (["train", "nosuchkind"], "ncanvas: No such command 'nosuchkind'. (see ncanvas train --help)"),
    (["train", "demo", "--epochs", "many"], "ncanvas: Invalid value for '--epochs'"),
    (["train", "demo", "--gpus", "0"], "ncanvas: Invalid value for '--gpus'"),
    (["jobs", "ls", "--bogus"], "ncanvas: No such option: --bogus (see ncanvas jobs ls --help)"),
    (["logs", "x", "-n", "-5"], "ncanvas: Invalid value for '--lines'"),
    (["nosuch"], "ncanvas: No such command 'nosuch'."),
])
def test_usage_errors_are_one_line_with_exit_2(ws, args: list[str], msg: str) -> None:
    res = invoke(ws.root, *args)
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.startswith(msg) and res.stderr.count("\n") == 1, res.stderr
    assert not list(ws.logs.glob("demo-*"))


def test_a_group_without_a_command_shows_its_help(ws) -> None:
    res = invoke(ws.root, "jobs")
    assert "Usage: ncanvas jobs" in res.output and "pause" in res.output


def test_ckpt_inspect(tmp_path: Path) -> None:
    import torch

    from core.checkpoint import make_checkpoint, save_checkpoint

    model = torch.nn.Linear(3, 2)
    path = save_checkpoint(make_checkpoint(kind="demo", arch="mlp", config={"lr": 0.1}, model=model.state_dict(),
                                           step=5, epoch=1), tmp_path / "latest.pt")
    res = invoke(tmp_path, "ckpt", "inspect", str(path))
    assert res.exit_code == 0 and "parameters: 8" in res.stdout and "lr=0.1" in res.stdout
    res = invoke(tmp_path, "ckpt", "inspect", str(path), "--json")
    assert json.loads(res.stdout)["step"] == 5
    (tmp_path / "bad.pt").write_text("nope")
    res = invoke(tmp_path, "ckpt", "inspect", str(tmp_path / "bad.pt"))
    assert res.exit_code == 1 and "truncated or not a torch checkpoint" in res.stderr


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`ncanvas ... | head`: no error line and no traceback when the reader goes away."""
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    p = subprocess.Popen([sys.executable, "-m", "tui.cli", "--home", str(tmp_path), "home"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=subprocess_env())
    p.stdout.close()  # long before the interpreter has started and printed
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141 and err == "", err


async def test_web_serves_the_real_dashboard(tmp_path: Path) -> None:
    """`ncanvas web`: the page loads, and a browser's websocket gets the dashboard drawn by a real session."""
    import asyncio
    import socket
    import subprocess
    import sys

    import aiohttp

    from tests.conftest import subprocess_env

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "tui.cli", "--home", str(tmp_path), "web", "--port", str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env())
    try:
        async with aiohttp.ClientSession() as http:
            page = ""
            for _ in range(200):
                try:
                    async with http.get(f"http://localhost:{port}/") as r:
                        page = await r.text()
                    break
                except aiohttp.ClientError:
                    assert p.poll() is None, p.stderr.read().decode()
                    await asyncio.sleep(0.3)
            assert f"ws://localhost:{port}/ws" in page
            screen = b""
            async with http.ws_connect(f"ws://localhost:{port}/ws?width=120&height=40") as ws:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 90
                while b"Grad-CAM" not in screen and loop.time() < deadline:
                    try:
                        msg = await asyncio.wait_for(ws.receive(), timeout=5)
                    except asyncio.TimeoutError:
                        continue
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        screen += msg.data
                    elif msg.type != aiohttp.WSMsgType.TEXT:
                        break
            assert b"ncanvas" in screen and b"Grad-CAM" in screen and b"running" in screen, screen[-2000:]
    finally:
        p.terminate()
        p.wait(timeout=30)


def test_web_refuses_an_unknown_theme(tmp_path: Path) -> None:
    res = runner.invoke(app, ["--home", str(tmp_path), "--theme", "neon", "web"])
    assert res.exit_code == 1 and "unknown theme 'neon'" in res.stderr


def test_module_entry_point_honours_home(ws) -> None:
    # `ncanvas web` starts each browser session as `python -m tui.cli --home ...`
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    run = ws.run("cnn-0001").make()
    write_record(run.job_json, JobRecord(id="cnn-0001", kind="cnn", state="finished"))
    out = subprocess.run([sys.executable, "-m", "tui.cli", "--home", str(ws.root), "jobs", "ls", "--json"],
                         capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert [j["id"] for j in json.loads(out.stdout)] == ["cnn-0001"]
