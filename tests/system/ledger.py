"""A ledger of job starts and ends written by real worker processes, read by the tests.

Each line is `<event> <job key> <pid>`, appended with O_APPEND so lines from many processes
never interleave. Tests wait on it with deadlines instead of sleeping.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path


def record(path: str, event: str, key: str) -> None:
    """Append one event (called inside tasks)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{event} {key} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


class Ledger:
    """Reads the ledger file; every wait has a deadline."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()

    def events(self) -> list[tuple[str, str, int]]:
        lines = self.path.read_text().splitlines()
        out = []
        for line in lines:
            event, key, pid = line.split()
            out.append((event, key, int(pid)))
        return out

    def count(self, event: str, key: str | None = None) -> int:
        return sum(1 for e, k, _ in self.events() if e == event and (key is None or k == key))

    def pids(self, event: str, key: str) -> list[int]:
        return [p for e, k, p in self.events() if e == event and k == key]

    def ends(self) -> Counter[str]:
        return Counter(k for e, k, _ in self.events() if e == "end")

    def wait_for(
        self, event: str, key: str | None = None, *, count: int = 1, within: timedelta
    ) -> None:
        deadline = time.monotonic() + within.total_seconds()
        while self.count(event, key) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"ledger has {self.count(event, key)} {event!r} for {key or 'any job'}, "
                    f"wanted {count} within {within}: {self.events()[-10:]}"
                )
            time.sleep(0.02)  # polling a file written by another process; no event to await
