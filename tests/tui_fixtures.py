"""A deterministic workspace for dashboard tests and snapshots: hand-written run directories, no processes."""

from __future__ import annotations

import math
from pathlib import Path

from core.metrics import MetricsWriter
from core.paths import Workspace
from core.runrec import JobRecord, write_record

T0 = 1_700_000_000.0


def _write_metrics(ws: Workspace, job_id: str, steps: int, metric: str | None, fail: bool = False) -> None:
    clock = iter(T0 + i for i in range(10**6))
    with MetricsWriter(ws.run(job_id).metrics, get_time=lambda: next(clock)) as w:
        w.event("started", step=0)
        for s in range(1, steps + 1):
            loss = 2.0 * math.exp(-s / 60) + 0.05 * math.sin(s / 3) + 0.1
            w.log(step=s, epoch=s // 50, split="train", loss=loss, lr=0.01)
            if s % 50 == 0:
                row = {"loss": loss * 1.1}
                if metric == "acc":
                    row["acc"] = 1.0 - loss / 3
                elif metric == "ppl":
                    row["ppl"] = math.exp(loss * 1.1)
                w.log(step=s, epoch=s // 50, split="val", **row)
                w.event("epoch_end", epoch=s // 50, step=s)
        w.event("failed" if fail else "finished", step=steps)


def make_fixture_workspace(root: Path) -> Workspace:
    """Three finished-or-failed jobs with fixed times, so every screen renders identically each run."""
    ws = Workspace(root).ensure()
    jobs = [
        ("cnn-0001", "cnn", "finished", 300, "acc", None, {"epoch": 6, "total_epochs": 6, "step": 300,
                                                           "total_steps": 300, "loss": 0.21, "val_acc": 0.93}),
        ("llm-0001", "llm", "stopped", 200, "ppl", None, {"epoch": 4, "total_epochs": 10, "step": 200,
                                                          "total_steps": 500, "loss": 0.4, "tok_s": 5120.0}),
        ("demo-0001", "demo", "failed", 120, None, "RuntimeError: demo failure requested at step 120",
         {"epoch": 2, "total_epochs": 3, "step": 120, "total_steps": 150, "loss": 0.3}),
    ]
    for i, (jid, kind, state, steps, metric, error, progress) in enumerate(jobs):
        run = ws.run(jid).make()
        rec = JobRecord(id=jid, kind=kind, config={"epochs": progress["total_epochs"], "lr": 0.01}, state=state,
                        created=T0 + i, started=T0 + i + 1, ended=T0 + i + 1 + 95 + 60 * i, attempts=1,
                        error=error, progress=progress, exit_code=1 if error else 0)
        write_record(run.job_json, rec)
        _write_metrics(ws, jid, steps, metric, fail=bool(error))
        run.stdout.write_text(f"[ncanvas] {jid} ({kind}) started on cpu\nepoch 1 loss 0.5\r"
                              f"epoch 1 loss 0.4\n" + (f"{error}\n" if error else "done\n"))
    (ws.run("cnn-0001").ckpt_dir / "best_model.pt").write_bytes(b"0" * 2048)
    return ws
