"""Inference panes on a real CNN trained in the test on real MNIST: classify, Grad-CAM keys and views, errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.paths import Workspace
from tests.conftest import MNIST_DIR, subprocess_env
from tests.tui_pilot import wait_until
from tui.app import NcanvasApp

TRAIN = """
import sys
from core.paths import Workspace
from jobs import supervisor
ws = Workspace(sys.argv[1]).ensure()
cfg = {"data_dir": sys.argv[2], "epochs": 1, "limit_train": 2000, "limit_test": 200, "gallery_size": 0}
rec, proc = supervisor.start_job(ws, "cnn", cfg, gpu="cpu")
proc.wait()
print(supervisor.job_status(ws, rec.id).state)
"""


@pytest.fixture(scope="module")
def cnn_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found in {MNIST_DIR}")
    root = tmp_path_factory.mktemp("cnnws")
    out = subprocess.run([sys.executable, "-c", TRAIN, str(root), str(MNIST_DIR)], capture_output=True, text=True,
                         env=subprocess_env(), timeout=300)
    assert out.stdout.strip().endswith("finished"), out.stdout + out.stderr
    ws = Workspace(root)
    bad = ws.run("cnn-0099").make()  # a job whose "checkpoint" is garbage: must be a notification, not a crash
    (bad.log_dir / "job.json").write_text('{"id": "cnn-0099", "kind": "cnn", "state": "finished", "created": 0}')
    (bad.ckpt_dir / "best_model.pt").write_bytes(b"not a checkpoint")
    return ws


def _status(pane) -> str:
    return str(pane.query_one("#status").render())


def _app(ws: Workspace) -> NcanvasApp:
    return NcanvasApp(ws, host="test", gpu_stats=lambda: [])


@pytest.mark.slow
async def test_classify_a_real_digit(cnn_ws: Workspace) -> None:
    from core.vision.api import classify, load_classifier

    app = _app(cnn_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        pane = app.query_one("ClassifyPane")
        good = str(cnn_ws.run("cnn-0001").ckpt_dir / "best_model.pt")
        await wait_until(pilot, lambda: pane.query_one("#ckpt").value == good, what="checkpoint listed")
        await pilot.click("#go")
        await wait_until(pilot, lambda: "sample 0:" in _status(pane), timeout=60, what="classification")
        clf = load_classifier(good)
        expected = classify(clf, clf.samples[0], top_k=1)[0][0]
        assert f"sample 0: {expected} (" in _status(pane)
        # the classification flows to the other panes: same image for Grad-CAM; Explain says a digit is no prompt
        # its art explainers read (they were trained on artist/style/genre only) and keeps its prompt
        assert app.query_one("GradCamPane").query_one("#image").value == "sample:0"
        explain = app.query_one("ExplainPane")
        assert f"classified as {expected}" in _status(explain) and "art classifications" in _status(explain)
        assert explain.query_one("#prompt").value == ""

        pane.query_one("#image").value = "mnist:3"  # a dataset sample, from the folder the checkpoint trained on
        pane.query_one("#image").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: "mnist:3:" in _status(pane), timeout=60, what="dataset sample")
        assert "true class" in _status(pane)

        pane.query_one("#image").value = "/no/such/image.png"
        pane.query_one("#image").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: pane.query_one("#status").has_class("-error"), timeout=30, what="error")
        assert "image not found" in _status(pane)
        pane.query_one("#image").value = "sample:1"
        pane.query_one("#ckpt").value = str(cnn_ws.run("cnn-0099").ckpt_dir / "best_model.pt")
        await pilot.press("ctrl+r")
        try:
            await wait_until(pilot, lambda: "cnn-0099" in _status(pane) or "checkpoint" in _status(pane), timeout=30,
                             what="bad checkpoint reported")
        except AssertionError:
            raise AssertionError(_status(pane)) from None
        assert pane.query_one("#status").has_class("-error") and app.is_running
        assert any(n.severity == "error" for n in app._notifications)


@pytest.mark.slow
async def test_gradcam_keys_and_views(cnn_ws: Workspace) -> None:
    app = _app(cnn_ws)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        pane = app.query_one("GradCamPane")
        await wait_until(pilot, lambda: pane.query_one("#ckpt").value and "cnn-0001" in pane.query_one("#ckpt").value,
                         what="checkpoint listed")
        await pilot.click("#gradcam #go")
        await wait_until(pilot, lambda: pane.result is not None, timeout=60, what="first CAM")
        first = pane.result
        assert first.heat.shape == first.image.shape[:2] and 0.0 <= first.heat.min() <= first.heat.max() <= 1.0
        pane.focus()
        seen = []
        for key, check in (("t", lambda r: r.target == (first.target + 1) % 10),
                           ("y", lambda r: r.layer != first.layer),
                           ("m", lambda r: r.method == "gradcam++"),
                           ("a", lambda r: pane.alpha == 0.6)):
            await pilot.press(key)
            await wait_until(pilot, lambda c=check: c(pane.result) and not pane.query_one("#status").has_class(
                "-error") and "…" not in _status(pane), timeout=60, what=f"key {key}")
            seen.append(_status(pane))
        for view in ("heatmap", "filters", "features", "maxact", "overlay"):
            await pilot.press("v")
            await wait_until(pilot, lambda v=view: f"view {v}" in _status(pane), timeout=60, what=f"view {view}")
        assert not pane.query_one("#status").has_class("-error")


@pytest.mark.slow
async def test_explain_without_llm_checkpoint_is_a_clear_message(cnn_ws: Workspace) -> None:
    app = _app(cnn_ws)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("4")
        pane = app.query_one("ExplainPane")
        pane.query_one("#prompt").value = "Claude Monet, Impressionism, landscape"
        await pilot.click("#explain #go")
        await wait_until(pilot, lambda: pane.query_one("#status").has_class("-error"), what="error")
        assert "checkpoint" in _status(pane)
        await pilot.press("5")
        analyze = app.query_one("AnalyzePane")
        await pilot.click("#analyze #go")
        await wait_until(pilot, lambda: analyze.query_one("#status").has_class("-error"), what="analyze error")
        assert "artcnn" in _status(analyze)



def test_checkpoint_choices_put_trained_models_first(tmp_path) -> None:
    """Every job's best/latest before any epoch_<n>.pt; the untrained start says so."""
    from tests.tui_fixtures import make_fixture_workspace
    from tui.inference import list_checkpoints

    ws = make_fixture_workspace(tmp_path)
    for jid, names in (("cnn-0001", ["epoch_0.pt", "best_model.pt", "latest.pt", "epoch_10.pt", "epoch_2.pt"]),
                       ("llm-0001", ["epoch_0.pt", "latest.pt"]), ("demo-0001", ["latest.pt"])):
        ws.run(jid).ckpt_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            (ws.run(jid).ckpt_dir / name).write_bytes(b"")
    labels = [c.label for c in list_checkpoints(ws, ("cnn", "llm"))]
    assert labels == ["llm-0001/latest.pt", "cnn-0001/best_model.pt", "cnn-0001/latest.pt",
                      "llm-0001/epoch_0.pt · untrained", "cnn-0001/epoch_0.pt · untrained", "cnn-0001/epoch_2.pt",
                      "cnn-0001/epoch_10.pt"]


def _cnn_job(ws, jid: str, state: str, dataset: str, val_acc: float | None, files: list[str],
             created: float) -> None:
    from core.runrec import JobRecord, write_record

    run = ws.run(jid).make()
    progress = {"val_acc": val_acc} if val_acc is not None else {}
    write_record(run.job_json, JobRecord(id=jid, kind="cnn", state=state, created=created, progress=progress,
                                         config={"dataset": dataset}, error="boom" if state == "failed" else None))
    for name in files:
        (run.ckpt_dir / name).write_bytes(b"")


def _ranked_workspace(tmp_path, fashion: bool = True):
    from core.paths import Workspace

    ws = Workspace(tmp_path / "ws").ensure()
    _cnn_job(ws, "cnn-0001", "finished", "mnist", 0.97, ["best_model.pt", "latest.pt", "epoch_0.pt"], 1.0)
    _cnn_job(ws, "cnn-0002", "failed", "mnist", 0.18, ["best_model.pt", "latest.pt"], 2.0)
    _cnn_job(ws, "cnn-0003", "stopped", "mnist", 0.91, ["best_model.pt", "latest.pt"], 3.0)
    if fashion:
        _cnn_job(ws, "cnn-0004", "finished", "fashion-mnist", 0.99, ["best_model.pt"], 4.0)
    _cnn_job(ws, "cnn-0005", "failed", "mnist", None, ["epoch_0.pt"], 5.0)  # the newest file: untrained
    return ws


def test_the_default_checkpoint_is_the_best_trained_one_for_the_dataset(tmp_path) -> None:
    from tui.inference import list_checkpoints, preferred

    choices = list_checkpoints(_ranked_workspace(tmp_path), ("cnn",))
    assert preferred(choices).label == "cnn-0004/best_model.pt · fashion-mnist"  # the best score overall
    best = preferred(choices, "mnist")
    assert best.label == "cnn-0001/best_model.pt · mnist" and best.info == "cnn-0001 · cnn · mnist · val_acc=0.97 · finished"
    failed = next(c for c in choices if c.job_id == "cnn-0002" and c.path.endswith("best_model.pt"))
    assert failed.label == "cnn-0002/best_model.pt · mnist · failed" and not failed.preferred
    assert not [c for c in choices if c.preferred and c.path.endswith(("epoch_0.pt", "latest.pt"))]
    assert preferred([c for c in choices if c.job_id in ("cnn-0002", "cnn-0005")]) is None


async def test_classify_and_grad_cam_preselect_that_checkpoint_and_say_which(tmp_path) -> None:
    """Not the newest file (an untrained epoch_0.pt, a failed job's best_model.pt): the best trained model."""
    ws = _ranked_workspace(tmp_path, fashion=False)
    want = str(ws.run("cnn-0001").ckpt_dir / "best_model.pt")
    app = NcanvasApp(ws, host="test", gpu_stats=lambda: [])
    async with app.run_test(size=(120, 40)) as pilot:
        for key, pane_id in (("2", "ClassifyPane"), ("3", "GradCamPane")):
            await pilot.press(key)
            pane = app.query_one(pane_id)
            await wait_until(pilot, lambda p=pane: p.query_one("#ckpt").value == want, what=f"{pane_id} default")
            info = str(pane.query_one("#ckpt-info").render())
            assert info == "cnn-0001 · cnn · mnist · val_acc=0.97 · finished", info


async def test_analyze_preselects_an_llm_as_explain_does(tmp_path) -> None:
    from core.runrec import JobRecord, write_record

    ws = _ranked_workspace(tmp_path, fashion=False)
    for jid, kind, state, progress in (("llm-0001", "llm", "finished", {"val_ppl": 3.5}),
                                       ("llm-0002", "llm", "finished", {"val_ppl": 2.1}),
                                       ("gpt2-0001", "gpt2", "failed", {"val_ppl": 1.5}),
                                       ("artcnn-0001", "artcnn", "finished", {"val_acc": 0.5})):
        run = ws.run(jid).make()
        write_record(run.job_json, JobRecord(id=jid, kind=kind, state=state, created=9.0, progress=progress,
                                             error="boom" if state == "failed" else None))
        (run.ckpt_dir / "best_model.pt").write_bytes(b"")
    want = str(ws.run("llm-0002").ckpt_dir / "best_model.pt")  # the lowest perplexity of a finished job
    app = NcanvasApp(ws, host="test", gpu_stats=lambda: [])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        explain = app.query_one("ExplainPane")
        await wait_until(pilot, lambda: explain.query_one("#ckpt").value == want, what="explain default")
        await pilot.press("5")
        analyze = app.query_one("AnalyzePane")
        await wait_until(pilot, lambda: analyze.query_one("#llm").value == want, what="analyze default LLM")
        assert "llm-0002 · llm · val_ppl=2.1 · finished" in str(analyze.query_one("#ckpt-info").render())


async def test_analyze_heads_keep_their_names_and_their_maps_in_one_row(tmp_path) -> None:
    from rich.text import Text

    from core.paths import Workspace
    from tui.capture import screen_text
    from tui.panes.analyze import HEADS, head_table

    tops = {"artist": [("Pierre-Auguste Renoir", 0.318), ("Vincent van Gogh", 0.231), ("Paul Cézanne", 0.097)],
            "style": [("Post-Impressionism", 0.783), ("Impressionism", 0.119), ("Expressionism", 0.057)],
            "genre": [("Landscape", 0.85), ("Flower Painting", 0.055), ("Genre Painting", 0.04)]}
    app = NcanvasApp(Workspace(tmp_path / "ws").ensure(), host="test", gpu_stats=lambda: [])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("5")
        pane = app.query_one("AnalyzePane")
        cam = Text("\n".join(["▄" * 24] * 12))
        pane._show(Text("▄" * 32), {h: head_table(h, tops[h]) for h in HEADS}, {h: cam for h in HEADS},
                   "CNN Classification Results:\nArtist: x")
        await pilot.pause(0.3)
        rows = {pane.query_one(f"#cam-{h}").region.y for h in HEADS}
        assert len(rows) == 1, f"the maps start on different rows: {rows}"
        text = screen_text(app).split("(esc cancels)")[1]  # below the status line
        assert "…" not in text
        for name in ("Post-Impressionism", "Impressionism", "Pierre-Auguste", "Renoir", "Flower Painting"):
            assert name in text, name
