"""The watcher thread and the curve helpers, without an app: real files, real thread."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.metrics import MetricsWriter
from core.paths import Workspace
from core.runrec import JobRecord, write_record
from tui.messages import GpuUpdated, JobsUpdated, LogLines, MetricsUpdated
from tui.watcher import Watcher, WatcherConfig
from tui.widgets.curve_lines import build_lines, default_metric, metric_choices


def _wait(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    raise AssertionError("timed out")


def _job(ws: Workspace, jid: str) -> Path:
    run = ws.run(jid).make()
    write_record(run.job_json, JobRecord(id=jid, kind="demo", state="finished"))
    return run.metrics


def test_watcher_tails_metrics_and_log_and_caps_series(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    metrics = _job(ws, "demo-0001")
    got: list = []
    w = Watcher(ws, got.append, WatcherConfig(interval=0.02, status_interval=0.1, cap=100),
                list_status=lambda ws: ["status"], gpu_stats=lambda: [])
    w.start()
    try:
        w.watch(("demo-0001",), "demo-0001")
        with MetricsWriter(metrics) as mw:
            for s in range(1, 1001):
                mw.log(step=s, split="train", loss=1.0 / s)
            mw.log(step=1000, split="val", loss=0.5)
        ws.run("demo-0001").stdout.write_text("line one\nbar 10%\rbar 20%\nbar 30%")
        _wait(lambda: w.snapshot().get("demo-0001", {}).get("val/loss"))
        steps, values, smoothed = w.snapshot()["demo-0001"]["train/loss"]
        assert len(steps) <= 101 and steps[-1] > 950, "capped, recent kept"
        assert smoothed == {}  # only the weight asked for is copied
        _, _, smoothed = w.snapshot(smoothing=0.9)["demo-0001"]["train/loss"]
        from core.smoothing import ema_debiased

        full = ema_debiased([1.0 / s for s in range(1, 1001)], 0.9)  # the EMA of all 1000 raw points, thinned
        assert smoothed[0.9] == pytest.approx([full[int(s) - 1] for s in steps], abs=1e-12)
        _wait(lambda: any(isinstance(m, LogLines) and m.lines for m in got))
        logs = [m for m in got if isinstance(m, LogLines)]
        assert [ln for m in logs for ln in m.lines] == ["line one", "bar 20%"]
        assert logs[-1].frame == "bar 30%"
        assert any(isinstance(m, JobsUpdated) for m in got) and any(isinstance(m, GpuUpdated) for m in got)
        assert any(isinstance(m, MetricsUpdated) and "demo-0001" in m.job_ids for m in got)
        w.watch((), None)
        assert w.snapshot() == {}, "unwatched jobs are dropped"
        assert w.errors == 0
    finally:
        w.stop()


def test_truncated_metrics_file_resets_the_series(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    metrics = _job(ws, "demo-0001")
    w = Watcher(ws, lambda m: None, WatcherConfig(interval=0.02), list_status=lambda ws: [], gpu_stats=lambda: [])
    w.start()
    try:
        w.watch(("demo-0001",), None)
        with MetricsWriter(metrics) as mw:
            for s in range(1, 51):
                mw.log(step=s, split="train", loss=1.0)
        _wait(lambda: len(w.snapshot().get("demo-0001", {}).get("train/loss", ([], []))[0]) == 50)
        metrics.write_text('{"v":1,"step":1,"split":"train","loss":2.0}\n')
        _wait(lambda: w.snapshot()["demo-0001"]["train/loss"][:2] == ([1], [2.0]))
    finally:
        w.stop()


def test_build_lines_smooths_train_only_and_downsamples() -> None:
    xs = list(range(1, 1001))
    snap = {"a": {"train/loss": (xs, [float(i % 2) for i in xs]), "val/loss": ([500, 1000], [0.5, 0.4])}}
    lines, _ = build_lines(snap, "loss", smoothing=0.9, points=100)
    train, val = lines
    assert len(train.xs) == 100 and train.xs[-1] == 1000
    assert max(train.ys[10:]) < 0.8, "EMA flattens the zig-zag"
    assert val.ys == [0.5, 0.4] and train.label == "train"
    two, _ = build_lines({**snap, "b": snap["a"]}, "loss", 0.0, 50)
    assert {ln.label for ln in two} == {"a train", "a val", "b train", "b val"}
    # a log axis: log10 of the positive values; zero and negative ones are counted, not drawn
    logged, hidden = build_lines({"a": {"train/loss": ([1, 2, 3], [0.0, 10.0, -1.0])}}, "loss", 0.0, 50, log_y=True)
    assert logged[0].ys == [1.0] and hidden == 2
    # non-finite and overflowing values are never handed to plotext
    odd, _ = build_lines({"a": {"val/acc": ([1, 2, 3, 4, float("inf")], [0.5, float("nan"), 1e308, 0.6, 0.7])}},
                         "acc", 0.0, 50)
    assert odd[0].xs == [1.0, 4.0] and odd[0].ys == [0.5, 0.6]


def test_metric_of_the_second_plot_comes_from_the_kind_and_cycles_through_logged_keys() -> None:
    assert default_metric("cnn", []) == "acc" and default_metric("llm", []) == "ppl"
    assert default_metric("demo", ["loss"]) is None and default_metric("x", ["loss", "top5"]) == "top5"
    assert metric_choices("llm", ["loss", "lr", "ppl", "grad_norm", "tok_s"]) == ["ppl", "grad_norm", "lr", "tok_s",
                                                                                  None]
    assert metric_choices("demo", ["loss", "samples_s"]) == ["samples_s", None]


async def test_path_suggester_completes_files_and_sample(tmp_path: Path) -> None:
    from tui.panes.base import PathSuggester

    (tmp_path / "digits").mkdir()
    (tmp_path / "digit_7.png").write_bytes(b"")
    s = PathSuggester()
    assert await s.get_suggestion(str(tmp_path / "digit_")) == str(tmp_path / "digit_7.png")
    assert await s.get_suggestion(str(tmp_path / "dig")) in (str(tmp_path / "digit_7.png"), str(tmp_path / "digits/"))
    assert await s.get_suggestion("sam") == "sample:0"
    assert await s.get_suggestion("/no/such/dir/x") is None


def test_metrics_messages_coalesce_keeping_every_job() -> None:
    older, newer = MetricsUpdated(frozenset({"a"})), MetricsUpdated(frozenset({"b"}))
    assert older.can_replace(newer) and newer.job_ids == {"a", "b"}
    assert JobsUpdated([]).can_replace(JobsUpdated([1])) and not LogLines("a", []).can_replace(LogLines("a", []))


def test_the_plot_smooths_with_core_ema_and_survives_a_nan() -> None:
    """The curves' EMA (on the kept points, when the watcher tracks no full-resolution one) is core's: the same
    numbers, a debiased start, and a NaN loss leaves a gap instead of turning the rest of the curve into NaN."""
    import numpy as np

    from core.smoothing import ema_debiased

    rng = np.random.default_rng(0)
    values = list(rng.normal(size=1000) * 10 + 3)
    steps = list(range(1, 1001))
    for w in (0.01, 0.6, 0.99):
        (line,), _ = build_lines({"a": {"train/loss": (steps, values)}}, "loss", w, points=2000)
        assert line.ys == ema_debiased(values, w).tolist()
        assert line.ys[0] == pytest.approx(values[0], rel=1e-15), "debiased start"
    values[10] = float("nan")
    (line,), _ = build_lines({"a": {"train/loss": (steps, values)}}, "loss", 0.9, points=2000)
    assert len(line.ys) == 999 and line.xs[10] == 12, "only the NaN point is left out"
    assert line.ys[10] == pytest.approx(ema_debiased(values[:10] + values[11:12], 0.9)[-1])


def test_a_big_metrics_file_shows_its_whole_curve_from_a_sample(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    metrics = _job(ws, "big-0001")
    line = '{"v":1,"t":0,"step":%d,"split":"train","loss":%.5f}\n'
    with open(metrics, "w") as f:  # ~60 MB: 1M train rows, a val row every 10K
        for start in range(0, 1_000_000, 10_000):
            f.write("".join(line % (s, 1.0 / s) for s in range(start + 1, start + 10_001)))
            f.write(f'{{"v":1,"step":{start + 10_000},"split":"val","loss":0.5}}\n')
    cfg = WatcherConfig(interval=0.02, tail_bytes=1 << 20, overview_points=500, cap=2000)
    w = Watcher(ws, lambda m: None, cfg, list_status=lambda ws: [], gpu_stats=lambda: [])
    w.start()
    try:
        w.watch(("big-0001",), None)
        _wait(lambda: (w.snapshot().get("big-0001", {}).get("train/loss") or [[0]])[0][-1] == 1_000_000, 30)
        steps, values, _ = w.snapshot()["big-0001"]["train/loss"]
        assert steps[0] < 5000, "the curve starts at the run's start, not at the tail"
        assert len(steps) <= 2001 and steps == sorted(steps)
        # the sampled start keeps its points (~500 asked for) beside the tail read in full (the last ~2%)
        assert sum(1 for st in steps if st < 980_000) >= 450
        assert w.snapshot()["big-0001"]["val/loss"][0] == list(range(10_000, 1_000_001, 10_000))
        assert w.errors == 0
    finally:
        w.stop()


def test_a_failing_poll_is_reported_once_not_swallowed(tmp_path: Path) -> None:
    from tui.messages import WatcherError

    ws = Workspace(tmp_path / "ws").ensure()
    got: list = []

    def broken(ws: Workspace) -> list:
        raise OSError("permission denied: logs/")

    def no_nvml() -> list:
        raise RuntimeError("NVML went away")

    w = Watcher(ws, got.append, WatcherConfig(interval=0.01, status_interval=0.01, gpu_interval=0.01),
                list_status=broken, gpu_stats=no_nvml)
    w.start()
    try:
        _wait(lambda: w.errors >= 10)
    finally:
        w.stop()
    errors = sorted(m.text for m in got if isinstance(m, WatcherError))
    # two sources failing together: each said once while it persists, not in turns
    assert errors == ["reading GPU stats failed: NVML went away", "reading job list failed: permission denied: logs/"]
