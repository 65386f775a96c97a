"""Atomic file writes: a temp file in the same directory, fsync, then ``os.replace``.

A reader (or a crash at any instant, SIGKILL included) sees either the old file or the new one, never a torn one.
Only regular files and new paths are replaced that way: a path that names a FIFO, a device or a socket (``-o
/dev/null``, a named pipe a viewer reads) and ``-`` (stdout) are written through, a symlink gets its target
written (the link stays), and a folder is refused with one line.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from core.errors import NcanvasError

STDOUT = "-"


def _fsync_dir(directory: Path) -> None:
    # The rename itself must reach the disk too, or a power loss can bring back the old name.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (e.g. certain network mounts) refuse fsync on directories; the data is already synced
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` can only be read by setting it, racing threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def write_target(path: str | os.PathLike[str]) -> tuple[Path | None, bool]:
    """Where a write to ``path`` goes, and whether it goes there atomically.

    Returns ``(None, False)`` for ``-`` (stdout); ``(target, False)`` for a FIFO, device or socket, written through
    as they are; ``(target, True)`` for a regular file or a new path, replaced atomically. ``target`` is ``path``
    with symlinks resolved, so a link is kept and its target written. A folder raises :class:`NcanvasError`."""
    if os.fspath(path) == STDOUT:
        return None, False
    target = Path(path)
    if target.is_symlink():
        target = Path(os.path.realpath(target))  # a dangling link: its target is created
    try:
        mode = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return target, True
    if stat.S_ISDIR(mode):
        raise NcanvasError(f"{path} is a folder; give a file name")
    return target, stat.S_ISREG(mode)


def _write_through(target: Path | None, write: Callable[[IO[bytes]], object]) -> None:
    """Write into stdout, a FIFO or a device as it is (no temp file, no rename: those would replace it)."""
    if target is None:
        out = sys.stdout.buffer
        write(out)
        out.flush()
        return
    with open(target, "wb") as f:
        write(f)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(f)`` on a temp file beside ``path`` and atomically move it into place.

    The file gets the permissions a plain ``open(path, "w")`` would give (``mkstemp`` makes it 0600), so e.g. a
    web server of another user can read an exported JSON. Stdout (``-``), FIFOs and devices are written through,
    a symlink's target is written (see :func:`write_target`).
    """
    target, atomic = write_target(path)
    if not atomic or target is None:
        _write_through(target, write)
        return

    def fill(fd: int, _tmp: str) -> None:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())

    _replace_atomically(target, fill)


def atomic_write_named(path: str | os.PathLike[str], write: Callable[[Path], object]) -> None:
    """:func:`atomic_write` for writers that only take a file name (e.g. safetensors): ``write(tmp)`` fills a
    unique temp file beside ``path`` by name; it is then fsynced and moved into place, or removed on error.
    Stdout, FIFOs and devices get the bytes of a temp file written elsewhere (see :func:`write_target`)."""
    target, atomic = write_target(path)
    if not atomic or target is None:
        fd, tmp = tempfile.mkstemp(prefix=".ncanvas-", suffix=".tmp")
        os.close(fd)
        try:
            write(Path(tmp))
            with open(tmp, "rb") as src:
                _write_through(target, lambda f: f.write(src.read()))
        finally:
            os.unlink(tmp)
        return

    def fill(fd: int, tmp: str) -> None:
        os.close(fd)
        write(Path(tmp))
        synced = os.open(tmp, os.O_RDONLY)  # by name: the writer may have replaced the file we created
        try:
            os.fsync(synced)
        finally:
            os.close(synced)

    _replace_atomically(target, fill)


def _replace_atomically(path: Path, fill: Callable[[int, str], None]) -> None:
    """Create a temp file beside ``path``, let ``fill(fd, tmp)`` write it (and close ``fd``), rename it over
    ``path``; on any error (KeyboardInterrupt too) the temp file is removed and the old ``path`` stays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        fill(fd, tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
