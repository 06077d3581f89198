"""A timed ledger: the chaos suite's record of every run, written by the tasks themselves.

Each line is `<event> <job key> <pid> <worker tag> <unix time>`, appended with O_APPEND so lines
from many processes never interleave. The worker tag (ERRANDS_TEST_WORKER_TAG, one per worker
process started) ties a run in a process-pool child to the worker that owned it; the time lets
the checker measure how long a killed job took to run again. Readers parse it incrementally.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path


def record_timed(path: str, event: str, key: str, tag: str) -> None:
    """Append one event (called inside tasks)."""
    line = f"{event} {key} {os.getpid()} {tag} {time.time():.6f}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Event:
    """One ledger line."""

    event: str
    key: str
    pid: int
    tag: str
    t: float


@dataclass(slots=True)
class Run:
    """One execution of a job: its start and, unless it was cut short, its end."""

    key: str
    pid: int
    tag: str
    start: float
    end: float | None = None


class TimedLedger:
    """Reads the ledger as it grows; every wait has a deadline."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()
        self._offset = 0
        self._partial = b""
        self.events: list[Event] = []
        self._runs: dict[str, list[Run]] = defaultdict(list)

    def refresh(self) -> list[Event]:
        """Read the lines appended since the last call; returns them."""
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        data, self._partial = self._partial + data, b""
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an unfinished line waits for the next refresh
        new = []
        for raw in lines:
            event, key, pid, tag, t = raw.decode().split()
            one = Event(event, key, int(pid), tag, float(t))
            new.append(one)
            self._add(one)
        self.events.extend(new)
        return new

    def _add(self, one: Event) -> None:
        runs = self._runs[one.key]
        if one.event == "start":
            runs.append(Run(one.key, one.pid, one.tag, one.t))
            return
        for run in reversed(runs):  # the latest open run of this job in this process
            if run.pid == one.pid and run.end is None:
                run.end = one.t
                return
        raise AssertionError(f"an end with no start: {one}")

    def runs(self, key: str) -> list[Run]:
        """Every run of `key`, in start order (as read so far)."""
        return sorted(self._runs.get(key, []), key=lambda r: r.start)

    def all_runs(self) -> dict[str, list[Run]]:
        """Runs per job key, each list in start order."""
        return {key: self.runs(key) for key in self._runs}

    def open_runs(self) -> list[Run]:
        """Runs started and not ended (as read so far)."""
        return [r for runs in self._runs.values() for r in runs if r.end is None]

    def count(self, event: str) -> int:
        """Events of this kind read so far."""
        return sum(1 for e in self.events if e.event == event)

    def wait_until(self, what: str, ready: Callable[[], bool], within: timedelta) -> None:
        """Refresh until `ready()` is true, or raise TimeoutError naming `what`."""
        deadline = time.monotonic() + within.total_seconds()
        self.refresh()
        while not ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not happen within {within}: {self.events[-5:]}")
            time.sleep(0.01)  # a file written by other processes; there is no event to await
            self.refresh()
