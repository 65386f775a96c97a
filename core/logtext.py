"""Tailing the human log (``stdout.log``) with ``\\r`` progress frames collapsed. No torch."""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path


def collapse_cr(line: str) -> str:
    """What a terminal would show for one line: the text after the last carriage return."""
    line = line.rstrip("\r")
    return line.rsplit("\r", 1)[-1]


# the most of an unfinished line kept between polls: a progress bar that never ends its line (tqdm's ``\r``
# frames for hours) must not grow memory, nor the cost of decoding it four times a second
MAX_PARTIAL = 16 << 10


def _trim_partial(partial: bytes, limit: int = MAX_PARTIAL) -> bytes:
    """The part of an unfinished line that can still be shown: from its last ``\\r`` frame on, at most ``limit``."""
    body = partial.rstrip(b"\r")  # a frame that ends in "\r" is still the one on screen
    cut = body.rfind(b"\r")
    if cut > 0:
        partial = partial[cut:]
    return partial[-limit:] if len(partial) > limit else partial


@dataclass
class LogTailer:
    """Incremental reader of a text log by byte offset: whole lines only, ``\\r`` frames collapsed."""

    path: Path
    start_at_tail_bytes: int | None = 64 << 10
    max_read: int = 1 << 20
    offset: int = 0
    _partial: bytes = b""
    _inode: int | None = None
    _skip_first: bool = False

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def poll(self) -> tuple[list[str], bool]:
        """New complete lines since the last call, and whether the file was truncated/replaced."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return [], False
        reset = False
        if self._inode is None:
            self._inode = st.st_ino
            if self.start_at_tail_bytes is not None and st.st_size > self.start_at_tail_bytes:
                self.offset, self._skip_first = st.st_size - self.start_at_tail_bytes, True
        elif st.st_ino != self._inode or st.st_size < self.offset:
            self._inode, self.offset, self._partial, self._skip_first = st.st_ino, 0, b"", False
            reset = True
        if st.st_size <= self.offset:
            return [], reset
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(min(self.max_read, st.st_size - self.offset))
        self.offset += len(data)
        parts = (self._partial + data).split(b"\n")
        self._partial = _trim_partial(parts.pop())
        if self._skip_first and parts:
            parts.pop(0)
            self._skip_first = False
        return [collapse_cr(p.decode("utf-8", errors="replace")) for p in parts], reset

    def current_frame(self) -> str:
        """The unfinished last line as shown now (e.g. a live progress bar), or ''."""
        return collapse_cr(self._partial.decode("utf-8", errors="replace"))


def last_lines(path: Path, n: int = 20, max_bytes: int = 256 << 10) -> list[str]:
    """The last ``n`` lines of a log, reading at most ``max_bytes`` from its end."""
    tail = LogTailer(Path(path), start_at_tail_bytes=max_bytes)
    lines: deque[str] = deque(maxlen=n)
    while True:
        before = tail.offset
        got, _ = tail.poll()
        lines.extend(got)
        if tail.offset == before:
            break
    frame = tail.current_frame()
    if frame:
        lines.append(frame)
    return list(lines)
