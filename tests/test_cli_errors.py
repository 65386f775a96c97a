"""Issue 13.14-13.16: inputs that used to reach the generic `ncanvas: ValueError: ... (NCANVAS_DEBUG=1 ...)` line,
library warnings around the one line, and Ctrl-C while the interpreter exits."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import subprocess_env
from tests.test_cli_outputs import make_cnn_checkpoint
from tui.cli import app

runner = CliRunner()
GENERIC = "NCANVAS_DEBUG=1 shows the traceback"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import numpy as np
    import torch
    from PIL import Image

    root = tmp_path_factory.mktemp("bad")
    Image.fromarray((np.arange(28 * 28) % 256).reshape(28, 28).astype(np.uint8)).save(root / "digit.png")
    ok = make_cnn_checkpoint(root / "cnn.pt")
    from core.checkpoint import load_checkpoint, save_checkpoint

    def edited(name: str, change: Any) -> Path:
        ck = load_checkpoint(ok)
        change(ck)
        return save_checkpoint(ck, root / name)

    return {
        "image": root / "digit.png", "cnn": ok, "root": root,
        "nan": edited("nan.pt", lambda ck: ck.update(model={k: torch.full_like(v, float("nan"))
                                                             for k, v in ck["model"].items()})),
        "fmt": edited("fmt.pt", lambda ck: ck.update(format_version="x")),
        "nomodel": edited("nomodel.pt", lambda ck: ck.update(model=None)),
        "few": edited("few.pt", lambda ck: ck["extra"]["vision"].update(class_names=["0", "1"])),
        "meta": edited("meta.pt", lambda ck: ck["extra"]["vision"].update(in_channels="three")),
    }


def one_line(res: Any, code: int = 1) -> str:
    assert res.exit_code == code, res.output
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("ncanvas: "), res.stderr
    assert GENERIC not in res.stderr and "Traceback" not in res.stderr, res.stderr
    return res.stderr.strip()[len("ncanvas: "):]


@pytest.mark.parametrize(("name", "says"), [
    ("nan", "holds non-finite weights (NaN or inf in "),
    ("fmt", "has a damaged header: format_version 'x' is not a number"),
    ("nomodel", "holds no model weights"),
    ("few", "names 2 classes for a model with 10 outputs"),
    ("meta", "has damaged vision metadata"),
])
def test_edited_checkpoints_are_named_in_one_line(files: dict[str, Path], name: str, says: str) -> None:
    res = runner.invoke(app, ["classify", str(files["image"]), "-c", str(files[name])])
    assert says in one_line(res)


@pytest.mark.parametrize(("device", "says"), [
    ("meta", "--device must be cpu, cuda or cuda:N; got 'meta'"),
    ("tpu", "--device must be cpu, cuda or cuda:N; got 'tpu'"),
    ("cpu:3", "there is one CPU device"),
])
def test_a_device_that_cannot_run_a_model_is_refused_before_loading(files: dict[str, Path], device: str,
                                                                    says: str) -> None:
    res = runner.invoke(app, ["explain", "--checkpoint", str(files["root"] / "missing.pt"), "--artist",
                              "Claude Monet", "--style", "Impressionism", "--genre", "Landscape", "--device", device])
    assert says in one_line(res)


def test_cuda_without_a_gpu_is_one_line() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    from core.devices import check_device
    from core.errors import NcanvasError

    for device in ("cuda", "cuda:3"):
        with pytest.raises(NcanvasError, match="no CUDA GPU here"):
            check_device(device)


@pytest.mark.parametrize("args", [["gradcam", "{image}", "-c", "{cnn}", "--width", "100000"],
                                  ["viz", "filters", "-c", "{cnn}", "--width", "100000"],
                                  ["viz", "maxact", "-c", "{cnn}", "--steps", "1000000000"]])
def test_sizes_are_bounded(files: dict[str, Path], args: list[str]) -> None:
    res = runner.invoke(app, [a.format(image=files["image"], cnn=files["cnn"]) for a in args])
    assert "Invalid value for" in one_line(res, code=2)


def test_an_hf_folder_without_tokenizer_is_one_line_without_library_lines(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=64)).save_pretrained(
        tmp_path / "hf")
    out = subprocess.run([sys.executable, "-m", "tui.cli", "explain", "--checkpoint", str(tmp_path / "hf"),
                          "--artist", "Claude Monet", "--style", "Impressionism", "--genre", "Landscape"],
                         capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "no tokenizer files (tokenizer.json, or vocab.json and merges.txt)" in out.stderr


def test_a_damaged_tokenizer_is_one_line(tmp_path: Path) -> None:
    from core.checkpoint import make_checkpoint, save_checkpoint
    from core.llm.model import ArtExpertLM, LMConfig

    cfg = LMConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, n_kv_head=1, d_model=16, d_ff=32)
    ck = make_checkpoint(kind="llm", arch="x", config={"model": cfg.__dict__}, model=ArtExpertLM(cfg).state_dict(),
                         extra={"tokenizer_json": "{not json"})
    save_checkpoint(ck, tmp_path / "llm.pt")
    from core.errors import CheckpointError
    from core.llm.generate import load_explainer

    with pytest.raises(CheckpointError, match="its tokenizer is damaged"):
        load_explainer(tmp_path / "llm.pt")


def test_a_read_only_output_is_one_plain_line(files: dict[str, Path], tmp_path: Path) -> None:
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        res = runner.invoke(app, ["gradcam", str(files["image"]), "-c", str(files["cnn"]), "--png",
                                  str(mnt / "cam.png")])
        assert one_line(res).startswith(f"cannot write {mnt}/") and "read-only" in res.stderr
        res = runner.invoke(app, ["--home", str(mnt), "train", "demo"])
        said = one_line(res)
        assert "read-only" in said and f"the workspace {mnt} is not writable" in said
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # pytest re-enables what ncanvas drops
def test_a_100_megapixel_image_is_downscaled_without_a_warning(files: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    Image.new("L", (10000, 10000)).save(tmp_path / "huge.png")
    out = subprocess.run([sys.executable, "-m", "tui.cli", "classify", str(tmp_path / "huge.png"), "-c",
                          str(files["cnn"]), "--top-k", "1"], capture_output=True, text=True, env=subprocess_env(),
                         timeout=120)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    from core.imageio import open_image

    assert max(open_image(tmp_path / "huge.png").size) == 4096


def test_ctrl_c_while_the_interpreter_exits_is_a_quiet_130(tmp_path: Path) -> None:
    """A SIGINT landing in an atexit callback (torch's, logging's, ...) used to print "Exception ignored in atexit
    callback ... KeyboardInterrupt" and exit 0."""
    code = ("import atexit, sys, time\natexit.register(time.sleep, 20)\n"
            f"sys.argv = ['ncanvas', '--home', {str(tmp_path)!r}, 'home']\n"
            "from tui.cli import main\nmain()\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=subprocess_env())
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == str(tmp_path.resolve())
        time.sleep(0.5)  # the command is done: the interpreter is in the atexit sleep
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == 130 and err == "", err
