import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

from core.metrics import MetricsTailer, MetricsWriter, RunSeries, Series, iter_rows, read_series, tail_rows
from core.smoothing import debias, downsample, ema_debiased, ema_step, moving_average, smooth


def test_writer_flushes_each_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    w = MetricsWriter(path, get_time=lambda: 12.5)
    w.log(step=1, split="train", loss=float("nan"))
    # visible to another reader before close: one line per call, flushed
    line = path.read_text().splitlines()[0]
    assert json.loads(line) == {"v": 1, "t": 12.5, "step": 1, "split": "train", "loss": None}
    w.event("finished", step=1)
    assert w.offset() == path.stat().st_size
    w.close()


def test_tailer_keeps_partial_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    tail = MetricsTailer(path)
    assert tail.poll().rows == []  # missing file is fine
    with open(path, "w") as f:
        f.write('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    assert [r["step"] for r in tail.poll().rows] == [1]
    with open(path, "a") as f:
        f.write('ss": 1.5}\n')
    rows = tail.poll().rows
    assert rows == [{"step": 2, "loss": 1.5}]
    assert tail.poll().rows == []


def test_tailer_skips_and_counts_malformed(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\nnot json\n[1,2]\n\n{"step": 2}\n')
    tail = MetricsTailer(path)
    assert [r["step"] for r in tail.poll().rows] == [1, 2]
    assert tail.bad_lines == 2


def test_tailer_survives_truncation_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n')
    tail = MetricsTailer(path)
    assert len(tail.poll().rows) == 2
    path.write_text('{"step": 9}\n')  # truncated and rewritten, shorter
    res = tail.poll()
    assert res.reset and [r["step"] for r in res.rows] == [9]
    new = tmp_path / "new.jsonl"
    new.write_text('{"step": 100}\n{"step": 101}\n{"step": 102}\n')
    os.replace(new, path)  # rotated: a different inode under the same name
    res = tail.poll()
    assert res.reset and [r["step"] for r in res.rows] == [100, 101, 102]


def test_million_line_file_tail_reads_only_the_end(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    line = '{"v":1,"t":0,"step":%d,"split":"train","loss":%f}\n'
    with open(path, "w") as f:
        for start in range(0, 1_000_000, 100_000):
            f.write("".join(line % (i, 1.0 / (i + 1)) for i in range(start, start + 100_000)))
    size = path.stat().st_size
    assert size > 50e6
    t0 = time.perf_counter()
    rows = tail_rows(path, max_bytes=64 << 10)
    elapsed = time.perf_counter() - t0
    assert rows[-1]["step"] == 999_999
    assert 500 < len(rows) < 2000  # only the last 64 KiB, whole lines
    assert all(b["step"] == a["step"] + 1 for a, b in zip(rows, rows[1:]))
    tail = MetricsTailer(path, start_at_tail_bytes=64 << 10)
    tail.read_all()
    assert tail.offset == size and tail.bad_lines == 0  # the partial first line is skipped, not counted bad
    assert elapsed < 5  # generous: reading 64 KiB, not 60 MB


def test_series_bounded_and_rewind_on_resume(tmp_path: Path) -> None:
    s = Series(cap=100)
    for i in range(1000):
        s.append(i, float(i))
    assert len(s) <= 100 and s.steps == sorted(s.steps) and s.stride > 1
    rs = RunSeries()
    rs.feed([{"step": i, "split": "train", "loss": 10 - i} for i in range(1, 8)])
    rs.feed([{"event": "resumed", "step": 5}, {"step": 6, "split": "train", "loss": 0.5}])
    assert rs.series["train/loss"].steps == [1, 2, 3, 4, 5, 6]
    assert rs.series["train/loss"].values[-1] == 0.5


def test_read_series_streams_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    w = MetricsWriter(path)
    for i in range(50):
        w.log(step=i, split="train", loss=1.0 / (i + 1), lr=0.1)
    w.log(step=49, split="val", loss=0.3, acc=0.9)
    w.close()
    rs = read_series(path)
    assert len(rs.series["train/loss"]) == 50 and rs.series["val/acc"].values == [0.9]
    assert sum(1 for _ in iter_rows(path, chunk=100)) == 51  # chunks smaller than a line still work


def test_ema_matches_hand_computed_series() -> None:
    # TensorBoard: last = last*w + (1-w)*v; smoothed = last / (1 - w**n)
    w = 0.5
    got = ema_debiased([1.0, 3.0, 5.0], w)
    # n=1: last=0.5, /0.5 = 1.0; n=2: last=0.25+1.5=1.75, /0.75=2.3333; n=3: last=0.875+2.5=3.375, /0.875=3.857142
    assert np.allclose(got, [1.0, 7 / 3, 3.375 / 0.875])
    assert np.allclose(ema_debiased([2.0, 2.0, 2.0], 0.9), 2.0)  # debiased: a constant stays constant
    assert np.array_equal(ema_debiased([1.0, 2.0], 0.0), [1.0, 2.0])
    with pytest.raises(ValueError):
        ema_debiased([1.0], 1.0)


def _ema_one_at_a_time(values: list[float], weight: float) -> list[float]:
    """The incremental form, point by point: what a tracked Series does as rows arrive."""
    acc, n, out = 0.0, 0, []
    for v in values:
        if math.isfinite(v):
            acc, n = ema_step(acc, v, weight), n + 1
        out.append(debias(acc, n, weight) if math.isfinite(v) else v)
    return out


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.6, 0.9, 0.99, 0.999])
def test_the_batch_ema_is_the_incremental_one(weight: float) -> None:
    """One EMA: the vectorised batch form (the plots, the curves PNG) gives the incremental form's numbers, across
    its internal blocks (10,000 points) and around non-finite values (carried over, not averaged in)."""
    rng = np.random.default_rng(1)
    values = list(rng.normal(size=10_000) * 5 + 2)
    for i in (0, 17, 4095, 4096, 9000):
        values[i] = float("nan") if i % 2 else float("inf")
    got = ema_debiased(values, weight)
    want = _ema_one_at_a_time(values, weight)
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)
    assert np.isinf(got[0]) and np.isnan(got[17]) and np.isfinite(got[18:4095]).all()
    assert got[1] == pytest.approx(values[1], rel=1e-15), "debiased: the first finite value is itself"


def test_a_repeated_value_is_one_step_with_a_count() -> None:
    acc = 0.0
    for _ in range(5):
        acc = ema_step(acc, 3.0, 0.9)
    assert ema_step(0.0, 3.0, 0.9, count=5) == pytest.approx(acc, rel=1e-15)
    assert debias(acc, 5, 0.9) == pytest.approx(3.0, rel=1e-15)


def test_moving_average_and_smooth_dispatch() -> None:
    assert np.allclose(moving_average([1, 2, 3, 4], 2), [1, 1.5, 2.5, 3.5])
    assert np.allclose(smooth([1, 2, 3], "none"), [1, 2, 3])
    assert np.allclose(smooth([1, 3], "ema", 0.5), [1, 7 / 3])
    with pytest.raises(ValueError):
        smooth([1], "median")


def test_downsample_keeps_shape_and_last_point() -> None:
    x = np.arange(10_000.0)
    y = np.sin(x / 100)
    xd, yd = downsample(x, y, 200)
    assert len(xd) == 200 and xd[-1] == x[-1] and yd[-1] == y[-1]
    assert np.all(np.diff(xd) > 0)
    assert downsample([1, 2], [3, 4], 10)[0].tolist() == [1, 2]


def test_thinned_series_keep_the_full_resolution_ema() -> None:
    """Smoothing is computed on every raw point, then thinned: not an EMA of what survived the thinning."""
    rng = np.random.default_rng(0)
    raw = 2.0 * np.exp(-np.arange(100_000) / 20_000) + rng.normal(0, 0.3, 100_000)
    s = Series(cap=4000, smooth_weights=(0.6, 0.99))
    for i, v in enumerate(raw):
        s.append(i, float(v))
    assert len(s) <= 4000 and s.stride >= 16
    full = ema_debiased(raw, 0.99)
    kept = np.asarray(s.steps, dtype=int)
    assert np.allclose(s.smoothed(0.99), full[kept], rtol=0, atol=1e-9)
    # an EMA of the thinned points (what a plot of the kept points would smooth) is much noisier
    thinned = ema_debiased(np.asarray(s.values), 0.99)
    assert np.abs(thinned - full[kept]).max() > 10 * np.abs(np.asarray(s.smoothed(0.99)) - full[kept]).max() + 0.05
    assert np.allclose(s.smoothed(0.9), ema_debiased(s.values, 0.9))  # an untracked weight: on the kept points


def test_tracked_ema_survives_a_resume_rewind_and_skips_nan() -> None:
    def fed(rows):
        rs = RunSeries(cap=10_000, smooth_weights=(0.9,))
        rs.feed(rows)
        return rs.get("train/loss")

    rows = [{"step": i, "split": "train", "loss": 1.0 / i, "lr": 0.1} for i in range(1, 301)]
    replay = rows[:200] + [{"event": "resumed", "step": 150}] + rows[150:]
    a, b = fed(rows), fed(replay)
    assert b.steps == a.steps and np.allclose(b.smoothed(0.9), a.smoothed(0.9), rtol=0, atol=1e-12)
    assert np.allclose(a.smoothed(0.9), ema_debiased([1.0 / i for i in range(1, 301)], 0.9))
    rs = RunSeries(smooth_weights=(0.9,))
    rs.feed(rows[:3])
    assert rs.get("train/lr").smooth_weights == ()  # only the plotted metrics are tracked
    c = fed([{"step": 1, "split": "train", "loss": 1.0}, {"step": 2, "split": "train", "loss": float("nan")},
             {"step": 3, "split": "train", "loss": 3.0}])
    out = c.smoothed(0.9)
    assert out[0] == 1.0 and np.isnan(out[1]) and out[2] == pytest.approx(ema_debiased([1.0, 3.0], 0.9)[1])


def test_rewind_keeps_the_ema_exact_after_a_graceful_stop_and_across_nan() -> None:
    rng = np.random.default_rng(1)
    raw = rng.normal(1.0, 0.5, 5000)
    raw[2999] = np.nan  # the last point before the resume is NaN
    straight, resumed = Series(cap=256, smooth_weights=(0.95,)), Series(cap=256, smooth_weights=(0.95,))
    for i, v in enumerate(raw, 1):
        straight.append(i, float(v))
    for i, v in enumerate(raw[:3000], 1):
        resumed.append(i, float(v))
    resumed.rewind(3000)  # a graceful stop saved at the last step: nothing is replayed, nothing may change
    for i, v in enumerate(raw[3000:], 3001):
        resumed.append(i, float(v))
    assert resumed.steps == straight.steps
    assert np.allclose(resumed.smoothed(0.95), straight.smoothed(0.95), rtol=0, atol=1e-12, equal_nan=True)
    full = ema_debiased(raw, 0.95)  # carries NaN over without averaging it in
    kept = np.asarray(resumed.steps, dtype=int) - 1
    assert np.allclose(resumed.smoothed(0.95), full[kept], rtol=0, atol=1e-9, equal_nan=True)


def _write_long_run(path: Path, steps: int, val_every: int, seed: int = 0) -> list[dict]:
    """A run's metrics as the writer spells them: noisy train rows, a val row and an event per 'epoch'."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = [{"v": 1, "event": "started", "step": 0}]
    for step in range(1, steps + 1):
        rows.append({"v": 1, "t": 0, "step": step, "split": "train", "loss": 2.0 / (1 + step / 5000)
                     + float(rng.normal(0, 0.1)), "lr": 0.001})
        if step % val_every == 0:
            rows.append({"v": 1, "step": step, "split": "val", "loss": 1.0 / (1 + step / 5000), "acc": 0.5})
            rows.append({"v": 1, "event": "epoch_end", "step": step})
    with open(path, "w") as f:
        f.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
    return rows


def test_overview_samples_the_start_and_keeps_every_val_row_and_event(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    rows = _write_long_run(path, steps=200_000, val_every=1000)
    size = path.stat().st_size
    tail = MetricsTailer(path, start_at_tail_bytes=256 << 10, overview_points=2000, overview_read=1 << 20)
    got = tail.read_all()
    assert tail.offset == size and tail.bad_lines == 0 and not tail.sampling
    # every val row and event, in order; train rows sampled before the tail, all of them in it
    assert [r["step"] for r in got if r.get("split") == "val"] == list(range(1000, 200_001, 1000))
    assert sum(1 for r in got if "event" in r) == sum(1 for r in rows if "event" in r)
    steps = [r["step"] for r in got if r.get("split") == "train"]
    assert steps == sorted(steps) and steps[-1] == 200_000 and steps[0] < 200
    assert 3000 < len(steps) < 8000  # ~2000 sampled + the ~2600 rows of the last 256 KiB, not 200K
    # each sampled row stands for the lines since the previous one: together they count every train row
    counted = sum(r.get("_n", 1) for r in got if r.get("split") == "train")
    assert abs(counted - 200_000) <= 2 * 200 + 1  # lines are counted, and val rows/events sit among them


def test_overview_curve_and_ema_match_the_full_read(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    _write_long_run(path, steps=100_000, val_every=5000, seed=1)
    full = read_series(path, cap=200_000, smooth_weights=(0.99,))
    sampled = RunSeries(cap=4000, smooth_weights=(0.99,))
    sampled.feed(MetricsTailer(path, start_at_tail_bytes=64 << 10, overview_points=1000).read_all())
    f, s = full.series["train/loss"], sampled.series["train/loss"]
    assert sampled.series["val/loss"].steps == full.series["val/loss"].steps
    # the sampled EMA tracks the full-resolution one (raw noise is 0.1; the curve spans 2.0 -> 0.1)
    f_ema = dict(zip(f.steps, f.smoothed(0.99)))
    diffs = [abs(v - f_ema[st]) for st, v in zip(s.steps, s.smoothed(0.99)) if st > 2000]
    assert max(diffs) < 0.12 and float(np.mean(diffs)) < 0.02  # 8 rows averaged per ~100


def test_small_files_and_growth_after_the_overview_are_read_in_full(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    _write_long_run(path, steps=50, val_every=10)
    tail = MetricsTailer(path, start_at_tail_bytes=1 << 20, overview_points=10)
    assert len([r for r in tail.read_all() if r.get("split") == "train"]) == 50  # under the tail size: all
    big = tmp_path / "big.jsonl"
    _write_long_run(big, steps=20_000, val_every=1000)
    tail = MetricsTailer(big, start_at_tail_bytes=32 << 10, overview_points=100, overview_read=64 << 10)
    first = tail.poll().rows
    assert tail.sampling and len(first) < 100  # one bounded chunk per poll while sampling
    tail.read_all()
    with open(big, "a") as f:
        f.write("".join(json.dumps({"step": 20_000 + i, "split": "train", "loss": 0.1}) + "\n" for i in range(1, 6)))
    assert [r["step"] for r in tail.poll().rows] == [20_001, 20_002, 20_003, 20_004, 20_005]


def test_thinning_keeps_points_evenly_spread_over_the_raw_rows() -> None:
    # an overview of 1M rows (1000 points of 1000 rows each), then 100K rows read in full
    s = Series(cap=500, smooth_weights=(0.9,))
    for i in range(1000):
        s.append(i * 1000 + 1000, 1.0, count=1000)
    for step in range(1_000_001, 1_100_001):
        s.append(step, 2.0)
    assert len(s) <= 500 and s.steps == sorted(s.steps)
    assert s.steps[0] == 1000 and s.steps[-1] == 1_100_000, "first and newest points kept"
    before = sum(1 for st in s.steps if st <= 1_000_000) / len(s)
    assert 0.85 < before < 0.95, f"{before:.0%} of the points for the first 91% of the rows"
    gaps = np.diff(s.steps)
    assert gaps.max() <= 4 * np.median(gaps), "no stretch of the run left bare"


def test_a_big_file_deleted_while_sampled_stops_the_sampling(tmp_path: Path) -> None:
    big = tmp_path / "big.jsonl"
    _write_long_run(big, steps=20_000, val_every=1000)
    tail = MetricsTailer(big, start_at_tail_bytes=32 << 10, overview_points=100, overview_read=64 << 10)
    tail.poll()
    assert tail.sampling
    big.unlink()
    assert tail.poll().rows == [] and not tail.sampling  # the watcher goes back to its normal pace


def test_run_series_takes_any_numeric_key_bounded() -> None:
    """No allow-list: the LLM's grad_norm and artcnn's per-head acc_* become series; bookkeeping keys do not;
    the number of series is bounded; non-finite values are counted."""
    rs = RunSeries(max_series=6)
    rs.feed([{"v": 1, "t": 5.0, "step": 1, "epoch": 0, "split": "train", "loss": 1.0, "grad_norm": 2.5,
              "tok_s": 900, "ok": True, "note": "x"},
             {"step": 2, "split": "val", "acc_artist": 0.4, "acc_style": 0.5, "_n": 3},
             {"step": 3, "split": "val", "loss": float("nan"), "ppl": float("inf")},
             {"step": float("inf"), "split": "train", "loss": 1.0},
             {"step": 4, "split": {"odd": 1}, "loss": 0.5}])
    assert set(rs.series) == {"train/loss", "train/grad_norm", "train/tok_s", "val/acc_artist", "val/acc_style",
                              "val/loss"}
    assert rs.dropped_keys == {"val/ppl", "other/loss"}
    assert rs.metric_names() == ["loss", "grad_norm", "tok_s", "acc_artist", "acc_style"]
    assert rs.nonfinite == 1
    assert rs.series["train/loss"].steps == [1]  # the row at step inf is skipped
