"""File-system errors as one plain sentence: a full disk, a read-only workspace, a denied path. No torch.

Libraries wrap the ``OSError`` a full disk raises in their own exceptions (``torch.save`` reports
``[enforce fail at inline_container.cc] . unexpected pos ...`` with the ``OSError`` only in the chain), so
:func:`disk_full_error` looks along the whole chain.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def os_error_in(exc: BaseException) -> OSError | None:
    """The first ``OSError`` with an errno in ``exc``'s chain (``exc`` itself included), else None."""
    return next((e for e in _chain(exc) if isinstance(e, OSError) and e.errno is not None), None)


def disk_full_error(exc: BaseException) -> OSError | None:
    """The ``OSError`` that says the disk (or quota) is full somewhere in ``exc``'s chain, else None."""
    return next((e for e in _chain(exc) if isinstance(e, OSError) and e.errno in DISK_FULL), None)


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Bytes free to this user on the file system holding ``path`` (or its nearest existing parent)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def describe_disk_full(directory: str | os.PathLike[str], kept: str = "") -> str:
    """``disk full: 12,288 bytes free on DIR; <kept>`` (``kept`` says what survived, e.g. the last checkpoint)."""
    free = free_bytes(directory)
    amount = "no space" if free is None else f"{free:,} bytes free"
    return f"disk full: {amount} on {directory}" + (f"; {kept}" if kept else "")


def describe_os_error(exc: BaseException, where: str | os.PathLike[str] | None = None, kept: str = "") -> str | None:
    """One sentence for a file-system error in ``exc``'s chain (None when there is none).

    ``where`` is the folder to report for a full disk (default: the failing file's folder); ``kept`` is appended
    to the disk-full sentence (what survived, or what was not done)."""
    full = disk_full_error(exc)
    if full is not None:
        folder = where if where is not None else (Path(full.filename).parent if full.filename else Path.cwd())
        return describe_disk_full(folder, kept)
    err = os_error_in(exc)
    if err is None:
        return None
    name = err.filename if err.filename is not None else where
    tail = f"; {kept}" if kept else ""
    if err.errno == errno.EROFS:
        return f"cannot write {name if name is not None else 'here'}: the file system is read-only{tail}"
    subject = name if name is not None else "file system"
    return f"{subject}: {(err.strerror or os.strerror(err.errno or 0)).lower()}{tail}"
