"""Liveness: a per-worker OS lock, so a rescuer on the same host sees a dead worker at once.

Each worker holds an exclusive `flock` on a file named after its id for as long as its process
lives; the kernel drops the lock when the process dies, however it dies. A rescuer that can
take the lock of a worker still listed as running jobs knows that worker is gone, and reclaims
its jobs without waiting for their leases to lapse. A missing file proves nothing (another
container's /tmp, a cleaner that removed it): such a worker is left to its leases.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; dead workers are found by their leases alone
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("errands.worker")


def lock_directory() -> Path:
    """Where the lock files of this host's workers live."""
    return Path(tempfile.gettempdir()) / "errands-workers"


def lock_path(worker_id: str, directory: Path | None = None) -> Path:
    """The lock file of `worker_id` (hashed: ids carry host names of any characters)."""
    digest = hashlib.sha1(worker_id.encode()).hexdigest()[:24]
    return (directory or lock_directory()) / f"{digest}.lock"


class LivenessLock:
    """The lock a live worker holds on its own file."""

    def __init__(self, worker_id: str, directory: Path | None = None) -> None:
        self.path = lock_path(worker_id, directory)
        self._fd: int | None = None

    def hold(self) -> bool:
        """Take the lock; False (and a warning) where the host offers no flock."""
        if fcntl is None:
            return False
        try:
            self.path.parent.mkdir(mode=0o1777, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            log.warning("no liveness lock at %s (%s): rescue waits for leases", self.path, error)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Remove the file and drop the lock (at a clean stop); idempotent."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def probe_gone(worker_ids: Iterable[str], directory: Path | None = None) -> list[str]:
    """The workers among `worker_ids` whose lock file exists and whose lock is free: their
    processes have ended. Each file found free is removed, so it is reported once."""
    if fcntl is None:
        return []
    gone: list[str] = []
    for worker_id in worker_ids:
        path = lock_path(worker_id, directory)
        try:
            fd = os.open(path, os.O_RDWR)  # never O_CREAT: no file proves nothing
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # held: the worker lives
            continue
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
        gone.append(worker_id)
    return gone
