"""Feed ``ncanvas`` the bad-input classes of issue 13 and count the clean one-line errors, per class.

    python bench/bad_inputs.py [--tree DIR] [--only CLASS] [-v]

Each case runs ``python -m tui.cli --home WS ...`` (or a small scenario of such commands) in a subprocess against
the code in ``--tree`` (default: this checkout), each in a fresh temporary folder. A case is *clean* when:

- the command exits non-zero (a usage error with 2) and stderr is exactly one line ``ncanvas: ...`` that is not the
  generic fallback (``... (NCANVAS_DEBUG=1 shows the traceback)``): no traceback, no library warning around it;
- and the case's own check holds (a FIFO is still a FIFO, nothing was created in the workspace, a job's
  stdout.log has no traceback for an expected error, ...).

Cases that need root (a device node, a tmpfs for a full disk or a read-only workspace) are skipped without it.
Run it on an old tree and on this one to compare: ``git archive REV | tar -x -C /tmp/old`` then ``--tree /tmp/old``.
"""

from __future__ import annotations

import argparse
import errno
import gzip
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
PY = sys.executable
GENERIC = "NCANVAS_DEBUG=1 shows the traceback"


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Case:
    cls: str  # the class, e.g. "checkpoint", "option", "output path"
    name: str
    argv: list[str] | None = None  # ncanvas arguments (after --home WS); {d} is the case folder, {fx} the fixtures
    setup: Callable[[Path, dict[str, Any]], None] | None = None
    check: Callable[[Path, Result], str] | None = None  # "" when the side effects are right, else why not
    scenario: Callable[[Path, dict[str, Any], Callable[..., Result]], str] | None = None  # multi-step cases
    usage: bool = False  # a usage error: exit 2
    root: bool = False  # needs root (mknod, mount)
    env: dict[str, str] | None = None
    stdin: str | None = None


# ============================================================================================ fixtures


def write_idx(path: Path, arr: Any) -> None:
    import numpy as np

    arr = np.asarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
        f.write(header + arr.tobytes())


def make_fixtures(fx_dir: Path, tree: Path) -> dict[str, Any]:
    """A cnn checkpoint, a demo checkpoint, a tiny llm checkpoint, an HF folder without tokenizer, images."""
    code = f"""
import sys, json, numpy as np, torch
sys.path.insert(0, {str(tree)!r})
from pathlib import Path
from PIL import Image
from core.checkpoint import make_checkpoint, save_checkpoint
from core.vision.models import build_model
d = Path({str(fx_dir)!r})
torch.manual_seed(0)
m = build_model("simplecnn", 1, 10, 28)
meta = {{"dataset": "mnist", "in_channels": 1, "num_classes": 10, "image_size": 28, "mean": [0.1307],
        "std": [0.3081], "class_names": [str(i) for i in range(10)], "model": "simplecnn",
        "samples": torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "sample_labels": torch.tensor([1, 2])}}
def ck(**over):
    c = make_checkpoint(kind="cnn", arch="simplecnn", config={{"model": "simplecnn"}}, model=m.state_dict(),
                        extra={{"vision": dict(meta)}})
    c.update(over)
    return c
save_checkpoint(ck(), d / "cnn.pt")
bad = ck(); bad["model"] = {{k: torch.full_like(v, float("nan")) for k, v in m.state_dict().items()}}
save_checkpoint(bad, d / "nan.pt")
save_checkpoint(ck(format_version="x"), d / "fmt.pt")
save_checkpoint(ck(model=None), d / "nomodel.pt")
few = ck(); few["extra"] = {{"vision": dict(meta, class_names=["0", "1"])}}
save_checkpoint(few, d / "fewclasses.pt")
save_checkpoint(make_checkpoint(kind="demo", arch="mlp", config={{}}, model=torch.nn.Linear(2, 2).state_dict()),
                d / "demo.pt")
torch.save({{"w": torch.zeros(2)}}, d / "foreign.pt")
torch.save({{"w": torch.zeros(2)}}, d / "rawpickle.pt", _use_new_zipfile_serialization=False)
(d / "truncated.pt").write_bytes((d / "cnn.pt").read_bytes()[:500])
(d / "text.pt").write_text("not a checkpoint")
Image.fromarray((np.arange(28 * 28) % 256).reshape(28, 28).astype(np.uint8)).save(d / "digit.png")
(d / "truncated.png").write_bytes((d / "digit.png").read_bytes()[:60])
(d / "notimage.png").write_text("hello")
Image.new("L", (10000, 10000)).save(d / "huge.png")  # 100 MP: over PIL's warning limit, under its error limit
from transformers import GPT2Config, GPT2LMHeadModel
GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=64)).save_pretrained(d / "hf")
print("ok")
"""
    fx_dir.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=tree, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"fixtures failed:\n{out.stderr[-3000:]}")
    ws = fx_dir / "llmws"
    if not (ws / "checkpoints" / "llm-0001" / "best_model.pt").is_file():
        train = run_cli(tree, ws, ["train", "llm", "--tokenizer", "bpe", "--bpe-vocab", "300", "--n-layer", "1",
                                   "--d-model", "32", "--n-head", "2", "--n-kv-head", "1", "--d-ff", "64",
                                   "--block-size", "64", "--n-pairs", "200", "--epochs", "1", "--eval-max", "20",
                                   "--gpu", "cpu", "--foreground"], cwd=fx_dir, timeout=600)
        if train.code != 0:
            raise SystemExit(f"llm fixture failed:\n{train.out[-2000:]}{train.err[-2000:]}")
    llm = ws / "checkpoints" / "llm-0001" / "best_model.pt"
    code = f"""
import sys, torch
sys.path.insert(0, {str(tree)!r})
from core.checkpoint import load_checkpoint, save_checkpoint
ck = load_checkpoint({str(llm)!r})
ck["extra"]["tokenizer_json"] = "{{not json"
save_checkpoint(ck, {str(fx_dir / 'badtok.pt')!r})
"""
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=tree, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"fixtures failed:\n{out.stderr[-3000:]}")
    return {"dir": fx_dir, "llm": llm}


def run_cli(tree: Path, ws: Path, argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 180, stdin: str | None = None) -> Result:
    e = dict(os.environ, PYTHONPATH=str(tree), NCANVAS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
             COLUMNS="100")
    e.pop("NCANVAS_HOME", None)
    e.update(env or {})
    try:
        p = subprocess.run([PY, "-m", "tui.cli", "--home", str(ws), *argv], capture_output=True, text=True,
                           cwd=cwd or tree, env=e, timeout=timeout, input=stdin)
    except subprocess.TimeoutExpired as t:
        return Result(-9, str(t.stdout or ""), f"timed out after {timeout}s")
    return Result(p.returncode, p.stdout, p.stderr)


def one_line(r: Result, usage: bool = False) -> str:
    """'' for a clean one-line error, else what is wrong."""
    if r.code == 0:
        return "exit 0"
    if usage and r.code != 2:
        return f"exit {r.code}, not 2"
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    if "Traceback" in r.err:
        return "traceback"
    if len(lines) != 1:
        return f"{len(lines)} stderr lines: {' | '.join(lines)[:160]}"
    if not lines[0].startswith("ncanvas: "):
        return f"not an ncanvas line: {lines[0][:120]}"
    if GENERIC in lines[0]:
        return f"generic: {lines[0][9:130]}"
    return ""


# ============================================================================================ checks


def nothing_created(ws_sub: str = "logs") -> Callable[[Path, Result], str]:
    def check(d: Path, _r: Result) -> str:
        logs = d / "ws" / ws_sub
        left = sorted(p.name for p in logs.iterdir()) if logs.is_dir() else []
        return f"created {left}" if left else ""
    return check


def still(kind: str, rel: str) -> Callable[[Path, Result], str]:
    tests = {"fifo": stat.S_ISFIFO, "chr": stat.S_ISCHR, "link": stat.S_ISLNK}

    def check(d: Path, _r: Result) -> str:
        mode = os.lstat(d / rel).st_mode
        return "" if tests[kind](mode) else f"{rel} is no longer a {kind}"
    return check


def fifo(name: str) -> Callable[[Path, dict[str, Any]], None]:
    def setup(d: Path, _fx: dict[str, Any]) -> None:
        os.mkfifo(d / name)
    return setup


def record(job_id: str, text: str) -> Callable[[Path, dict[str, Any]], None]:
    def setup(d: Path, _fx: dict[str, Any]) -> None:
        run = d / "ws" / "logs" / job_id
        run.mkdir(parents=True)
        (run / "job.json").write_text(text)
    return setup


def valid_record(job_id: str, **over: Any) -> str:
    rec = {"id": job_id, "kind": "demo", "config": {}, "argv": [], "code": {}, "state": "stopped",
           "created": time.time(), "started": None, "ended": None, "pid": None, "pgid": None, "gpu": "cpu",
           "nproc": 1, "after": None, "max_per_gpu": 1, "resume": False, "attempts": 1, "exit_code": 0,
           "error": None, "progress": {}, "schema": 1}
    rec.update(over)
    return json.dumps(rec)


def mount_tmpfs(path: Path, size: str, ro: bool = False) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if ro else "")
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True).returncode == 0


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


# ============================================================================================ scenarios


def sc_full_disk_train(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    mnt = d / "full"
    if not mount_tmpfs(mnt, "2m"):
        return "skip"
    try:
        (mnt / "ws" / "logs").mkdir(parents=True)
        fill_up(mnt / "filler")
        r = cli(["train", "demo", "--name", "x"], ws=mnt / "ws")
        why = one_line(r)
        left = sorted(p.name for p in (mnt / "ws" / "logs").iterdir())
        if left:
            why = why or f"left behind {left}"
        return why
    finally:
        umount(mnt)


def fill_up(path: Path) -> None:
    """Write zeros into ``path`` until the file system is full (a running job may have filled it already)."""
    try:
        with open(path, "wb") as f:
            while True:
                f.write(b"\0" * 16384)
                f.flush()
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise


def sc_full_disk_checkpoint(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    """The disk fills up while a job runs: its failure reason names the disk and the checkpoint that is kept, not
    torch's ``enforce fail ... unexpected pos``, and stdout.log holds no traceback."""
    mnt = d / "full"
    if not mount_tmpfs(mnt, "4m"):
        return "skip"
    ws, run = mnt / "ws", mnt / "ws" / "logs" / "x"
    try:
        cli(["train", "demo", "--hidden", "2048", "--steps-per-epoch", "100000", "--epochs", "1", "--checkpoint-every",
             "5", "--step-sleep", "0.02", "--name", "x"], ws=ws)
        if not _wait(lambda: (ws / "checkpoints" / "x" / "latest.pt").is_file()):
            return "no latest.pt"
        fill_up(mnt / "filler")
        if not _wait(lambda: _state(ws, "x") in ("failed", "finished", "stopped"), 60):
            return f"state {_state(ws, 'x')}"
        _wait(lambda: not _locked(run / "run.lock"), 10)
        rec = json.loads((run / "job.json").read_text())
        err, log = rec.get("error") or "", (run / "stdout.log").read_text(errors="replace")
        if rec.get("state") != "failed" or not err.startswith("disk full"):
            return f"{rec.get('state')}: {err[:120]}"
        return "traceback in stdout.log" if "Traceback" in log else ""
    finally:
        cli(["jobs", "kill", "x"], ws=ws)
        umount(mnt)


def _locked(path: Path) -> bool:
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def sc_readonly_workspace(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    mnt = d / "ro"
    if not mount_tmpfs(mnt, "1m"):
        return "skip"
    try:
        (mnt / "logs").mkdir()
        (mnt / "checkpoints").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True, capture_output=True)
        return one_line(cli(["train", "demo"], ws=mnt))
    finally:
        umount(mnt)


def sc_readonly_output(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    mnt = d / "ro"
    if not mount_tmpfs(mnt, "1m", ro=True):
        return "skip"
    try:
        return one_line(cli(["gradcam", str(fx["dir"] / "digit.png"), "-c", str(fx["dir"] / "cnn.pt"), "--png",
                             str(mnt / "cam.png")]))
    finally:
        umount(mnt)


def _wait(pred: Callable[[], bool], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def _state(ws: Path, job_id: str) -> str:
    try:
        return str(json.loads((ws / "logs" / job_id / "job.json").read_text()).get("state"))
    except (OSError, ValueError):
        return ""


def sc_rm_dependency(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    """rm of a job another job waits for: refused in one line (names the waiter); forced, the waiter fails in one
    line, in its job.json and its stdout.log."""
    ws = d / "ws"
    cli(["train", "demo", "--name", "dep", "--epochs", "1", "--steps-per-epoch", "100000", "--step-sleep", "0.01"])
    cli(["train", "demo", "--name", "waiter", "--after", "dep"])
    try:
        if not _wait(lambda: (ws / "logs" / "waiter" / "job.json").is_file() and _state(ws, "waiter") == "queued"):
            return "waiter never queued"
        r = cli(["jobs", "stop", "dep"])
        why = one_line(cli(["jobs", "rm", "dep"]))
        if why:
            return f"rm without --force: {why}"
        cli(["jobs", "rm", "dep", "--force"])
        if not _wait(lambda: _state(ws, "waiter") == "failed", 30):
            return f"waiter is {_state(ws, 'waiter')} ({r.out.strip()})"
        log = (ws / "logs" / "waiter" / "stdout.log").read_text(errors="replace")
        return "traceback in the waiter's stdout.log" if "Traceback" in log else ""
    finally:
        for j in ("dep", "waiter"):
            cli(["jobs", "kill", j])


def sc_expected_job_error(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    """Missing CIFAR data found only by the job: one line in stdout.log, not a traceback."""
    (d / "empty").mkdir()
    r = cli(["train", "cnn", "--dataset", "cifar10", "--data-dir", str(d / "empty"), "--name", "c", "--foreground"],
            timeout=300)
    log_path = d / "ws" / "logs" / "c" / "stdout.log"
    if not log_path.is_file():  # refused before anything was created: fine too
        return one_line(r)
    log = log_path.read_text(errors="replace")
    return "traceback in stdout.log" if "Traceback" in log else ""


def sc_resume_without_latest(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    """A job with metric rows but no latest.pt: resume refuses (one line) instead of mixing two attempts' rows."""
    ws = d / "ws"
    cli(["train", "demo", "--name", "x", "--fail-at-step", "5", "--foreground"])
    (ws / "checkpoints" / "x" / "latest.pt").unlink(missing_ok=True)
    return one_line(cli(["jobs", "resume", "x"]))


def sc_nproc(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    ws = d / "ws"
    record("x", valid_record("x", nproc=1_000_000))(d, fx)
    why = one_line(cli(["jobs", "resume", "x"]))
    time.sleep(0.5)
    log = ws / "logs" / "x" / "stdout.log"
    if log.is_file() and "nproc-per-node=1000000" in " ".join(json.loads((ws / "logs/x/job.json").read_text())
                                                                ["argv"]):
        return why or "launched torchrun with 1000000 processes"
    return why


def sc_sigint_at_exit(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    """Ctrl-C while the interpreter exits (an atexit callback running): exit 130, nothing on stderr."""
    code = ("import atexit, sys, time; atexit.register(time.sleep, 5); "
            f"sys.argv = ['ncanvas', '--home', {str(d / 'ws')!r}, 'home']; print('go', flush=True); "
            "from tui.cli import main; main()")
    e = dict(os.environ, PYTHONPATH=str(fx["tree"]))
    p = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
    assert p.stdout is not None
    p.stdout.readline()
    p.stdout.readline()  # the workspace: the command is done, the interpreter is exiting
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    if p.returncode != 130:
        return f"exit {p.returncode}" + (f"; {len(err.splitlines())} stderr lines" if err else "")
    return f"{len(err.splitlines())} stderr lines" if err.strip() else ""


def sc_ls_unreadable(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    record("bad-json", "{")(d, fx)
    record("schema", valid_record("schema", schema=99))(d, fx)
    record("mismatch", valid_record("other"))(d, fx)
    r = cli(["jobs", "ls", "--json"])
    try:
        rows = {j["id"]: j for j in json.loads(r.out, parse_constant=_strict)}
    except ValueError as e:
        return f"not strict JSON: {e}"
    missing = [j for j in ("bad-json", "schema", "mismatch") if j not in rows]
    return f"hidden: {missing}" if missing else ""


def _strict(token: str) -> Any:
    raise ValueError(f"bare {token}")


def sc_ls_nan(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    """A diverged job's NaN loss: strict JSON in `jobs ls --json` and `jobs show --json`."""
    text = valid_record("x", progress={"loss": float("nan"), "step": 3})
    record("x", text)(d, fx)
    for argv in (["jobs", "ls", "--json"], ["jobs", "show", "x", "--json"]):
        r = cli(argv)
        try:
            json.loads(r.out, parse_constant=_strict)
        except ValueError as e:
            return f"{' '.join(argv)}: {e}"
    return ""


def sc_rm_symlinked(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    """rm of a job whose folders are symlinks: the truth in one line (and nothing outside touched)."""
    ws = d / "ws"
    outside = d / "outside"
    (outside / "logs-x").mkdir(parents=True)
    (outside / "ckpt-x").mkdir(parents=True)
    (outside / "logs-x" / "job.json").write_text(valid_record("x"))
    (outside / "ckpt-x" / "latest.pt").write_text("keep me")
    (ws / "logs").mkdir(parents=True)
    (ws / "checkpoints").mkdir(parents=True)
    (ws / "logs" / "x").symlink_to(outside / "logs-x")
    (ws / "checkpoints" / "x").symlink_to(outside / "ckpt-x")
    r = cli(["jobs", "rm", "x"])
    if not (outside / "ckpt-x" / "latest.pt").is_file():
        return "deleted a file outside the workspace"
    if r.code == 0 and (ws / "logs" / "x").exists():
        return f"said {r.out.strip()!r} but the job is still there"
    if r.code == 0:
        return "" if ("link" in r.out) else f"said {r.out.strip()!r} without mentioning the links"
    return one_line(r)


def sc_leftover_folder(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    """A run folder without job.json (a creation that failed half-way): rm removes it."""
    ws = d / "ws"
    (ws / "logs" / "x").mkdir(parents=True)
    (ws / "logs" / "x" / "control.lock").write_text("")
    (ws / "checkpoints" / "x").mkdir(parents=True)
    r = cli(["jobs", "rm", "x"])
    if (ws / "logs" / "x").exists() or (ws / "checkpoints" / "x").exists():
        return f"left in place ({(r.err or r.out).strip()[:100]})"
    return "" if r.code == 0 else one_line(r)


def sc_relative_data_dir(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    """`cd proj && ncanvas train cnn --data-dir data/mnist`: the path is the caller's, not the job's."""
    import numpy as np

    proj = d / "proj"
    rng = np.random.default_rng(0)
    for split, n in (("train", 64), ("t10k", 32)):
        write_idx(proj / "data" / "mnist" / f"{split}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)))
        write_idx(proj / "data" / "mnist" / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n))
    r = cli(["train", "cnn", "--data-dir", "data/mnist", "--epochs", "1", "--name", "c", "--foreground",
             "--gpu", "cpu"], cwd=proj, timeout=300)
    if r.code != 0:
        return f"failed: {(r.out + r.err).strip().splitlines()[-1][:120]}"
    return ""


def sc_relative_missing(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    r = cli(["train", "cnn", "--data-dir", "no/such/dir"], cwd=d)
    why = one_line(r)
    return why or nothing_created()(d, r)


def sc_gzip_bomb(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    """An IDX file whose header declares 60000 images but which inflates to 1 GB: refused without inflating it all."""
    data = d / "bomb"
    data.mkdir()
    header = bytes([0, 0, 8, 3]) + struct.pack(">III", 60000, 28, 28)
    with gzip.open(data / "t10k-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(header)
        zeros = b"\0" * (1 << 20)
        for _ in range(1024):
            f.write(zeros)
    write_idx(data / "t10k-labels-idx1-ubyte", [1] * 60000)
    t0 = time.perf_counter()
    r = cli(["classify", "--sample", "mnist:0", "--data-dir", str(data), "-c", str(fx["dir"] / "cnn.pt")])
    dt = time.perf_counter() - t0
    return one_line(r) or ("" if dt < 8 else f"took {dt:.1f}s")


def sc_pipe_export_dir(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    ck = d / "ws" / "checkpoints" / "cnn-0001"
    ck.mkdir(parents=True)
    (ck / "best_model.pt").write_bytes((fx["dir"] / "cnn.pt").read_bytes())
    (d / "outdir").mkdir()
    return one_line(cli(["export-json", "cnn-0001", "-o", str(d / "outdir")]))


def sc_device_node(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    """`--png` naming a character device (a private /dev/null): written through, the device stays."""
    try:
        os.mknod(d / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        return "skip"
    r = cli(["gradcam", str(fx["dir"] / "digit.png"), "-c", str(fx["dir"] / "cnn.pt"), "--png", str(d / "null")])
    if not stat.S_ISCHR(os.lstat(d / "null").st_mode):
        return "the device was replaced by a regular file"
    return "" if r.code == 0 else one_line(r)


def sc_fifo_png(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    """`--png out.fifo` with a reader on the FIFO: written through, the FIFO stays a FIFO."""
    import threading

    os.mkfifo(d / "out.fifo")
    got: list[bytes] = []

    def reader() -> None:
        try:
            with open(d / "out.fifo", "rb") as f:
                got.append(f.read())
        except OSError:
            pass  # the folder went away with a failed case

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    r = cli(["gradcam", str(fx["dir"] / "digit.png"), "-c", str(fx["dir"] / "cnn.pt"), "--png", str(d / "out.fifo")],
            timeout=60)
    if not stat.S_ISFIFO(os.lstat(d / "out.fifo").st_mode):
        if not got:  # unblock the reader
            with open(d / "out.fifo", "wb"):
                pass
        return "the FIFO was replaced by a regular file"
    t.join(10)
    if r.code != 0:
        return one_line(r)
    return "" if got and got[0].startswith(b"\x89PNG") else "no PNG came through the FIFO"


def sc_symlink_png(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    (d / "target.png").write_bytes(b"old")
    (d / "link.png").symlink_to(d / "target.png")
    r = cli(["gradcam", str(fx["dir"] / "digit.png"), "-c", str(fx["dir"] / "cnn.pt"), "--png", str(d / "link.png")])
    if not (d / "link.png").is_symlink():
        return "the symlink was replaced by a regular file"
    if r.code == 0:
        return "" if (d / "target.png").read_bytes().startswith(b"\x89PNG") else "the target was not written"
    return one_line(r)


def sc_queued_prints(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    """A job queued behind another says so instead of "started"."""
    cli(["train", "demo", "--name", "dep", "--epochs", "1", "--steps-per-epoch", "100000", "--step-sleep", "0.01"])
    try:
        r = cli(["train", "demo", "--name", "w", "--after", "dep"])
        return "" if r.out.startswith("queued") else f"printed {r.out.strip()[:80]!r}"
    finally:
        cli(["jobs", "kill", "w"])
        cli(["jobs", "kill", "dep"])


def sc_eval_llm_path(d: Path, fx: dict[str, Any], cli: Callable[..., Result]) -> str:
    """The README's `eval-llm --checkpoint checkpoints/llm-0001` with NCANVAS_HOME pointing elsewhere."""
    ws = fx["llm"].parents[2]
    r = cli(["eval-llm", "--checkpoint", "checkpoints/llm-0001", "--max-examples", "2", "--samples", "0"], ws=ws,
            cwd=d, timeout=300)
    return "" if r.code == 0 else f"failed: {r.err.strip()[:120]}"


# ============================================================================================ the cases


def cases() -> list[Case]:
    c = "{fx}/cnn.pt"
    img = "{fx}/digit.png"
    out: list[Case] = []
    # -- checkpoints (item 14)
    file_level = ("missing", "directory", "truncated", "text", "foreign torch file", "raw pickle", "format_version x")
    for name, f in [("missing", "{d}/none.pt"), ("directory", "{d}"), ("truncated", "{fx}/truncated.pt"),
                    ("text", "{fx}/text.pt"), ("foreign torch file", "{fx}/foreign.pt"),
                    ("raw pickle", "{fx}/rawpickle.pt"), ("wrong kind", "{fx}/demo.pt"),
                    ("NaN weights", "{fx}/nan.pt"), ("format_version x", "{fx}/fmt.pt"),
                    ("model null", "{fx}/nomodel.pt"), ("too few class names", "{fx}/fewclasses.pt")]:
        out.append(Case("checkpoint", f"classify: {name}", ["classify", img, "-c", f]))
        if name in file_level:  # the others are readable checkpoints that inspect may well describe
            out.append(Case("checkpoint", f"ckpt inspect: {name}", ["ckpt", "inspect", f]))
    out.append(Case("checkpoint", "explain: HF folder without tokenizer", ["explain", "--checkpoint", "{fx}/hf",
                                                                          "--artist", "Claude Monet", "--style",
                                                                          "Impressionism", "--genre", "Landscape"]))
    out.append(Case("checkpoint", "explain: bad tokenizer_json", ["explain", "--checkpoint", "{fx}/badtok.pt",
                                                                  "--artist", "Claude Monet", "--style",
                                                                  "Impressionism", "--genre", "Landscape"]))
    out.append(Case("checkpoint", "explain: a cnn checkpoint", ["explain", "--checkpoint", c, "--artist",
                                                                "Claude Monet", "--style", "Impressionism",
                                                                "--genre", "Landscape"]))
    # -- devices and sizes (item 14)
    for dev in ("cuda", "cuda:3", "meta", "tpu"):
        out.append(Case("device", f"explain --device {dev}", ["explain", "--checkpoint", "{llm}", "--artist",
                                                              "Claude Monet", "--style", "Impressionism", "--genre",
                                                              "Landscape", "--device", dev]))
    out.append(Case("size", "gradcam --width 100000", ["gradcam", img, "-c", c, "--width", "100000"]))
    out.append(Case("size", "viz filters --width 100000", ["viz", "filters", "-c", c, "--width", "100000"]))
    out.append(Case("size", "viz maxact --steps 10**9", ["viz", "maxact", "-c", c, "--steps", "1000000000"]))
    # -- images
    for name, f in [("missing", "{d}/none.png"), ("directory", "{d}"), ("not an image", "{fx}/notimage.png"),
                    ("truncated", "{fx}/truncated.png")]:
        out.append(Case("image", f"classify: {name}", ["classify", f, "-c", c]))
    out.append(Case("image", "classify: 100-megapixel image (no warning)", ["classify", "{fx}/huge.png", "-c", c],
                    check=_success_quiet))
    out.append(Case("image", "classify: raw-pickle .pt (no torch warning)", ["classify", img, "-c",
                                                                             "{fx}/rawpickle.pt"]))
    # -- ids (item 11)
    for name, jid in [("too long (100 chars)", "a" * 100), ("65 chars", "b" * 65), ("upper case", "Cnn-0001"),
                      ("traversal", "../x"), ("empty", "")]:
        says = _says("64 characters") if "chars" in name else None
        out.append(Case("id", f"jobs show: {name}", ["jobs", "show", jid], check=says))
        out.append(Case("id", f"train --name: {name}", ["train", "demo", "--name", jid],
                        check=_both(nothing_created(), says)))
    # -- options refused before anything is created (items 8, 9)
    for name, argv in [("--lr nan", ["train", "cnn", "--lr", "nan"]),
                       ("--val-fraction nan", ["train", "cnn", "--val-fraction", "nan"]),
                       ("--weight-decay nan", ["train", "cnn", "--weight-decay", "nan"]),
                       ("--step-sleep nan", ["train", "demo", "--step-sleep", "nan"]),
                       ("--lr inf", ["train", "demo", "--lr", "inf"]),
                       ("--grad-clip inf", ["train", "llm", "--grad-clip", "inf"]),
                       ("--seed 2**70", ["train", "demo", "--seed", "1180591620717411303424"]),
                       ("--checkpoint-every 2**70", ["train", "demo", "--checkpoint-every", str(2 ** 70)]),
                       ("--gpu 7", ["train", "cnn", "--gpu", "7"]),
                       ("--gpu 0 (no GPU)", ["train", "llm", "--gpu", "0"]),
                       ("--gpus 100000 --gpu cpu", ["train", "demo", "--gpus", "100000", "--gpu", "cpu"]),
                       ("--data-dir missing", ["train", "cnn", "--data-dir", "{d}/nothing"]),
                       ("--data missing", ["train", "llm", "--data", "{d}/nothing"]),
                       ("--base missing folder", ["train", "gpt2", "--base", "{d}/nothing"]),
                       ("--after missing", ["train", "demo", "--after", "ghost"])]:
        if "--gpu" in argv and _has_gpu():
            continue
        out.append(Case("option", name, argv, check=nothing_created()))
    # -- output paths (items 1, 14)
    out.append(Case("output path", "gradcam --png FIFO", scenario=sc_fifo_png))
    out.append(Case("output path", "gradcam --png symlink", scenario=sc_symlink_png))
    out.append(Case("output path", "gradcam --png device node", scenario=sc_device_node, root=True))
    out.append(Case("output path", "export-json -o DIR", scenario=sc_pipe_export_dir))
    out.append(Case("output path", "gradcam --png on a read-only mount", scenario=sc_readonly_output, root=True))
    # -- run records (items 10, 12, 13)
    out.append(Case("record", "jobs show: invalid JSON", ["jobs", "show", "x"], setup=record("x", "{")))
    out.append(Case("record", "jobs show: schema 99", ["jobs", "show", "x"], setup=record("x", valid_record("x", schema=99))))
    out.append(Case("record", "jobs resume: nproc 1000000", scenario=sc_nproc))
    out.append(Case("record", "jobs ls --json: unreadable records listed", scenario=sc_ls_unreadable))
    out.append(Case("record", "jobs ls/show --json: strict JSON for NaN", scenario=sc_ls_nan))
    # -- files and jobs (items 2-7, 17, 20)
    out.append(Case("files", "train: relative --data-dir from another folder", scenario=sc_relative_data_dir))
    out.append(Case("files", "train: relative --data-dir that does not exist", scenario=sc_relative_missing))
    out.append(Case("files", "train --name on a full disk", scenario=sc_full_disk_train, root=True))
    out.append(Case("files", "disk full during a checkpoint", scenario=sc_full_disk_checkpoint, root=True))
    out.append(Case("files", "train on a read-only workspace", scenario=sc_readonly_workspace, root=True))
    out.append(Case("files", "rm of symlinked run folders", scenario=sc_rm_symlinked))
    out.append(Case("files", "rm of a leftover folder", scenario=sc_leftover_folder))
    out.append(Case("files", "gzip bomb in --data-dir", scenario=sc_gzip_bomb))
    out.append(Case("jobs", "resume without latest.pt", scenario=sc_resume_without_latest))
    out.append(Case("jobs", "rm of a dependency; the waiter fails in one line", scenario=sc_rm_dependency))
    out.append(Case("jobs", "expected job error is one line in stdout.log", scenario=sc_expected_job_error))
    out.append(Case("jobs", "a queued job says queued", scenario=sc_queued_prints))
    out.append(Case("jobs", "eval-llm --checkpoint checkpoints/ID with NCANVAS_HOME", scenario=sc_eval_llm_path))
    # -- signals (item 16)
    out.append(Case("signal", "SIGINT during interpreter exit", scenario=sc_sigint_at_exit))
    return out


def _says(text: str) -> Callable[[Path, Result], str]:
    def check(_d: Path, r: Result) -> str:
        return "" if text in r.err else f"does not say {text!r}: {r.err.strip()[:100]}"
    return check


def _both(*checks: Callable[[Path, Result], str] | None) -> Callable[[Path, Result], str]:
    def check(d: Path, r: Result) -> str:
        return next((why for c in checks if c is not None and (why := c(d, r))), "")
    return check


def _success_quiet(_d: Path, r: Result) -> str:
    if r.code != 0:
        return one_line(r) or f"exit {r.code}"
    return f"stderr: {r.err.strip()[:150]}" if r.err.strip() else ""


def _has_gpu() -> bool:
    return Path("/proc/driver/nvidia/gpus").is_dir() and any(Path("/proc/driver/nvidia/gpus").iterdir())


def run_case(case: Case, tree: Path, fx: dict[str, Any]) -> str:
    with tempfile.TemporaryDirectory(prefix="ncanvas-bad-") as tmp:
        d = Path(tmp)
        (d / "ws").mkdir()

        def cli(argv: list[str], ws: Path | None = None, cwd: Path | None = None, timeout: float = 180) -> Result:
            return run_cli(tree, ws or d / "ws", argv, cwd=cwd, env=case.env, timeout=timeout, stdin=case.stdin)

        try:
            return _run(case, d, fx, tree, cli)
        finally:
            _kill_leftovers(d)  # an accepted bad option may have launched a job (even torchrun with 100000 ranks)


def _kill_leftovers(d: Path) -> None:
    """SIGKILL every process whose command line names the case's folder, until none is left (torchrun keeps
    spawning ranks for a while, each in its own session, so no process group reaches them all)."""
    me = os.getpid()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(d) in cmd:
                found.append(int(entry.name))
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not found:
            return
        time.sleep(0.2)


def _run(case: Case, d: Path, fx: dict[str, Any], tree: Path, cli: Callable[..., Result]) -> str:
    if case.scenario is not None:
        return case.scenario(d, dict(fx, tree=tree), cli)
    if case.setup is not None:
        case.setup(d, fx)
    argv = [a.replace("{d}", str(d)).replace("{fx}", str(fx["dir"])).replace("{llm}", str(fx["llm"]))
            for a in case.argv or []]
    r = cli(argv)
    if case.check is _success_quiet:
        return _success_quiet(d, r)
    why = one_line(r, case.usage)
    if not why and case.check is not None:
        why = case.check(d, r)
    return why


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", type=Path, default=HERE, help="the ncanvas checkout to test (default: this one)")
    p.add_argument("--fixtures", type=Path, default=Path(tempfile.gettempdir()) / "ncanvas-bad-inputs-fixtures")
    p.add_argument("--only", help="run only the cases whose class or name contains this")
    p.add_argument("-v", "--verbose", action="store_true", help="print every case, not only the unclean ones")
    args = p.parse_args()
    tree = args.tree.resolve()
    fx = make_fixtures(args.fixtures, tree)
    clean, total, skipped = Counter(), Counter(), 0
    for case in cases():
        if args.only and args.only not in case.cls and args.only not in case.name:
            continue
        if case.root and os.geteuid() != 0:
            skipped += 1
            continue
        try:
            why = run_case(case, tree, fx)
        except Exception as e:  # noqa: BLE001 - a broken case is reported, the others still run
            why = f"case error: {type(e).__name__}: {e}"
        if why == "skip":
            skipped += 1
            continue
        total[case.cls] += 1
        clean[case.cls] += not why
        if why or args.verbose:
            print(f"{'ok ' if not why else 'BAD'} [{case.cls}] {case.name}" + (f": {why}" if why else ""), flush=True)
    print(f"\n{'class':<14}{'clean':>7}{'cases':>7}")
    for cls in total:
        print(f"{cls:<14}{clean[cls]:>7}{total[cls]:>7}")
    print(f"{'total':<14}{sum(clean.values()):>7}{sum(total.values()):>7}" + (f"   ({skipped} skipped)" if skipped else ""))


if __name__ == "__main__":
    main()
