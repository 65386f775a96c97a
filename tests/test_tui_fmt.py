"""The cells the jobs table and `ncanvas jobs ls` share (tui/fmt.py): units and headline from the kind's KindSpec,
a paused job's ETA, odd values in a hand-edited job.json."""

from __future__ import annotations

from typer.testing import CliRunner

from tests.test_tui_dashboard import BUSY
from tui.fmt import fmt_duration, fmt_eta, fmt_num, headline_metric, throughput


def test_throughput_and_headline_come_from_the_kind() -> None:
    assert throughput({"img_s": 800.4}, "cnn") == "800 img/s"
    assert throughput({"samples_s": 2345.0}, "demo") == "2345 samples/s"
    assert throughput({"tok_s": 5120.0, "img_s": 3.0}, "llm") == "5120 tok/s"
    assert throughput({"tok_s": 10.0}, None) == "10 tok/s"  # an unknown kind: any kind's key
    assert headline_metric({"val_ppl": 2.5, "val_loss": 0.9}, "llm") == "val_ppl=2.5"
    assert headline_metric({"val_loss": 0.3}, "demo") == "val_loss=0.3"


def test_odd_values_never_raise() -> None:
    assert throughput({"img_s": "fast"}, "cnn") == "-" and throughput({"img_s": float("nan")}, "cnn") == "-"
    assert fmt_duration("soon") == "-" and fmt_duration(float("inf")) == "-" and fmt_duration(True) == "-"
    assert fmt_num("x" * 100) == "x" * 24
    assert fmt_eta("paused", 600.0) == "paused" and fmt_eta("running", 95.0) == "1m35s"


def test_jobs_ls_shows_each_kinds_speed_and_a_paused_eta(monkeypatch) -> None:
    import jobs.supervisor
    from tui.cli import app

    monkeypatch.setattr(jobs.supervisor, "list_status", lambda ws, **_: BUSY)
    out = CliRunner().invoke(app, ["jobs", "ls"], env={"COLUMNS": "200"}).stdout
    row = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert "2345 samples/s" in row["demo-0004"] and "5120 tok/s" in row["llm-0003"]
    assert "val_acc=0.9312" in row["artcnn-0001"]
    assert row["cnn-0002"].split()[-2] == "paused", row["cnn-0002"]  # the ETA column, before GPU
