"""The human-log tailer: ``\\r`` progress frames collapsed, and bounded however long a line never ends."""

from __future__ import annotations

from pathlib import Path

from core.logtext import MAX_PARTIAL, LogTailer, collapse_cr, last_lines


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def test_collapse_cr_keeps_what_a_terminal_shows() -> None:
    assert collapse_cr("epoch 1  10%\repoch 1  20%\repoch 1 100%") == "epoch 1 100%"
    assert collapse_cr("done\r") == "done"
    assert collapse_cr("plain") == "plain"


def test_endless_progress_line_stays_bounded_and_shows_the_last_frame(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    _append(log, "started\n")
    tail = LogTailer(log, start_at_tail_bytes=None)
    assert tail.poll() == (["started"], False)
    for i in range(20_000):  # ~600 KB of frames on one line that never ends
        _append(log, f"\rstep {i:6d} loss 0.{i:04d}")
        if i % 500 == 0:
            lines, _ = tail.poll()
            assert lines == []
            assert tail.current_frame() == f"step {i:6d} loss 0.{i:04d}"
    tail.poll()
    assert tail.current_frame() == "step  19999 loss 0.19999"
    assert len(tail._partial) <= MAX_PARTIAL
    _append(log, "\rfinished\r")  # a frame ending in \r is still the one shown
    tail.poll()
    assert tail.current_frame() == "finished"
    _append(log, "\nnext line\n")
    assert tail.poll() == (["finished", "next line"], False)
    assert tail.current_frame() == ""


def test_a_line_without_any_carriage_return_is_capped_too(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    _append(log, "x" * (3 * MAX_PARTIAL))
    tail = LogTailer(log, start_at_tail_bytes=None)
    tail.poll()
    assert len(tail._partial) == MAX_PARTIAL
    _append(log, "yz\n")
    lines, _ = tail.poll()
    assert len(lines) == 1 and lines[0].endswith("xyz")


def test_last_lines_include_the_live_frame(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    _append(log, "a\nb\r c\nd\n\r10%\r20%")
    assert last_lines(log, n=3) == [" c", "d", "20%"]
