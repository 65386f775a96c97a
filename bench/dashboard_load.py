"""Dashboard load: CPU use while 8 jobs each log 100 metric rows/s, and opening a 1 GB metrics file.

Prints the dashboard process's CPU share (process time / wall time) with all 8 jobs overlaid in the curves,
against the same app idle on the same workspace (the peer), and the time and memory to show a curve for a
job whose metrics.jsonl is ~1 GB. Run: ``python bench/dashboard_load.py [--seconds 20] [--gb 1.0]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.paths import Workspace  # noqa: E402
from core.runrec import JobRecord, write_record  # noqa: E402

WRITER = r"""
import json, sys, time
paths = sys.argv[2:]; rate = float(sys.argv[1])
files = [open(p, "a") for p in paths]
step = 0; t0 = time.monotonic()
while True:
    step += 1
    for f in files:
        f.write(json.dumps({"v": 1, "t": time.time(), "step": step, "split": "train", "loss": 1.0 / step}) + "\n")
        f.flush()
    time.sleep(max(0.0, t0 + step / rate - time.monotonic()))
"""


def make_jobs(ws: Workspace, n: int) -> list[Path]:
    out = []
    for i in range(n):
        run = ws.run(f"demo-{i + 1:04d}").make()
        write_record(run.job_json, JobRecord(id=run.job_id, kind="demo", state="finished", created=i))
        out.append(run.metrics)
    return out


async def loop_lag(seconds: float, period: float = 0.01) -> list[float]:
    """How late a 10 ms timer fires on the app's event loop: the longest stall a key press could meet."""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        await asyncio.sleep(period)
        out.append(time.perf_counter() - t0 - period)
    return sorted(out)


async def cpu_share(ws: Workspace, seconds: float, mark_all: bool) -> tuple[float, list[float]]:
    from tui.app import NcanvasApp
    from tui.widgets.jobs_table import JobsTable

    app = NcanvasApp(ws, host="bench", gpu_stats=lambda: [])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(1.0)
        if mark_all:
            table = app.query_one(JobsTable)
            for _ in range(table.row_count):
                await pilot.press("space", "down")
        await pilot.pause(1.0)
        c0, w0 = time.process_time(), time.monotonic()
        lags = await loop_lag(seconds)
        share = (time.process_time() - c0) / (time.monotonic() - w0)
        return share, lags


def write_big(path: Path, gb: float) -> int:
    row = {"v": 1, "t": 1.7e9, "step": 0, "epoch": 0, "split": "train", "loss": 0.5, "lr": 0.001, "tok_s": 1000.0}
    target = int(gb * (1 << 30))
    with open(path, "w") as f:
        step, size, chunk = 0, 0, []
        while size < target:
            step += 1
            row["step"] = step
            line = json.dumps(row) + "\n"
            chunk.append(line)
            size += len(line)
            if len(chunk) == 10000:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))
    return step


async def big_file(ws: Workspace, last: int) -> tuple[float, float, tuple[int, int], int, list[float]]:
    """Seconds to the first curve and to the whole curve (its last step shown), the first step shown, the
    number of points plotted, and the event-loop lag while the file is scanned."""
    from tui.app import NcanvasApp
    from tui.dashboard import Dashboard

    app = NcanvasApp(ws, host="bench", gpu_stats=lambda: [])
    t0 = time.monotonic()
    async with app.run_test(size=(120, 40)) as pilot:
        dash = app.query_one(Dashboard)
        while not dash.curves.snapshot.get("big-0001"):
            await pilot.pause(0.02)
        first = time.monotonic() - t0
        lags: list[float] = []
        # done when the newest stored point is the file's end (within the thinned series' stride)
        while max(dash.curves.snapshot["big-0001"]["train/loss"][0]) < 0.999 * last and time.monotonic() - t0 < 120:
            lags += await loop_lag(0.2)
        steps = dash.curves.snapshot["big-0001"]["train/loss"][0]
        return first, time.monotonic() - t0, (int(min(steps)), int(max(steps))), len(steps), sorted(lags)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--big-only", action="store_true", help="only the 1 GB file")
    ap.add_argument("--no-big", action="store_true", help="only the 8 logging jobs")
    args = ap.parse_args()
    med = lambda xs: xs[len(xs) // 2] * 1000  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        if not args.big_only:
            many_jobs(Path(tmp), args, med)
        if not args.no_big:
            big_run(Path(tmp), args, med)


def many_jobs(tmp: Path, args: argparse.Namespace, med: Callable[[list[float]], float]) -> None:
    ws = Workspace(tmp / "ws").ensure()
    paths = make_jobs(ws, args.jobs)
    idle, idle_lat = asyncio.run(cpu_share(ws, args.seconds, mark_all=False))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(args.rate), *map(str, paths)])
    try:
        busy, busy_lat = asyncio.run(cpu_share(ws, args.seconds, mark_all=True))
    finally:
        writer.kill()
    rows = sum(sum(1 for _ in open(p)) for p in paths)
    print(f"dashboard CPU, {args.jobs} jobs x {args.rate:.0f} rows/s, all overlaid: {busy:.1%} of one core")
    print(f"dashboard CPU, same workspace, no writes (peer):        {idle:.1%} of one core")
    print(f"ratio busy/idle: {busy / max(idle, 1e-9):.2f}x  ({rows} rows written during the run)")
    p99 = lambda xs: xs[int(len(xs) * 0.99)] * 1000  # noqa: E731
    print(f"event-loop lag (10 ms timer): median {med(busy_lat):.1f} ms, p99 {p99(busy_lat):.1f} ms, "
          f"max {busy_lat[-1] * 1000:.0f} ms under load; idle median {med(idle_lat):.1f} ms, "
          f"p99 {p99(idle_lat):.1f} ms, max {idle_lat[-1] * 1000:.0f} ms")


def big_run(tmp: Path, args: argparse.Namespace, med: Callable[[list[float]], float]) -> None:
    big = Workspace(tmp / "big").ensure()
    run = big.run("big-0001").make()
    write_record(run.job_json, JobRecord(id="big-0001", kind="llm", state="finished"))
    t0 = time.monotonic()
    last = write_big(run.metrics, args.gb)
    size = run.metrics.stat().st_size
    print(f"wrote {size / 2**30:.2f} GiB ({last} rows) in {time.monotonic() - t0:.1f}s")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    first, whole, (lo, hi), points, lags = asyncio.run(big_file(big, last))
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"1 GB metrics file: first curve {first:.2f}s after start, whole curve (steps {lo}..{hi} of {last}, "
          f"{points} points) {whole:.2f}s; event-loop lag meanwhile median {med(lags):.1f} ms, "
          f"max {lags[-1] * 1000:.0f} ms; peak RSS grew {(rss1 - rss0) / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
