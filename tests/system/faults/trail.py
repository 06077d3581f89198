"""A timestamped trail of task events, written by worker children and producers, read by tests.

Each line is `<event> <key> <pid> <monotonic seconds>`, appended with one O_APPEND write so
lines from many processes never interleave. CLOCK_MONOTONIC is system-wide on Linux, so the
test process compares these instants with its own `time.monotonic()`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


def append(path: str | os.PathLike[str], line: str) -> None:
    """Append one line in one write (called from tasks and producers)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def record(path: str | os.PathLike[str], event: str, key: str) -> None:
    """Append one event of this process, stamped with the system-wide monotonic clock."""
    append(path, f"{event} {key} {os.getpid()} {time.monotonic():.6f}")


@dataclass(frozen=True, slots=True)
class Event:
    event: str
    key: str
    pid: int
    at: float


class Trail:
    """Reads a trail file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def events(self) -> list[Event]:
        out = []
        for line in self.path.read_text().splitlines():
            event, key, pid, at = line.split()
            out.append(Event(event, key, int(pid), float(at)))
        return out

    def of(self, event: str, key: str | None = None) -> list[Event]:
        return [e for e in self.events() if e.event == event and (key is None or e.key == key)]
