"""flock-based locks: liveness of a job (its run lock) and serialising control actions. No torch.

A lock held by a process disappears with the process (crash, SIGKILL, OOM killer, reboot), so a reused PID can
never look alive. Readers test a lock by trying to take it shared and non-blocking.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path


class FileLock:
    """An exclusive flock on ``path`` held for the life of this object (or of the process)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self, timeout: float = 0.0, poll: float = 0.05) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds. False if someone else holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.fd = fd
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(poll)

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    @property
    def held(self) -> bool:
        return self.fd is not None


def is_locked(path: Path) -> bool:
    """True while some process holds ``path`` locked. Momentarily takes a shared lock if nobody does."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops our shared lock, if we got it
    return False


@contextlib.contextmanager
def exclusive(path: Path, timeout: float = 30.0) -> Iterator[None]:
    """Hold ``path`` exclusively for a block (e.g. two `resume`s racing on one job)."""
    lock = FileLock(path)
    if not lock.acquire(timeout=timeout):
        from core.errors import NcanvasError

        raise NcanvasError(f"another ncanvas command is acting on this job (lock {path.name}); try again")
    try:
        yield
    finally:
        lock.release()
