"""Live figures of the overview: counts per queue, and throughput and failure rate from the
change of those counts between two readings, as the page's cells and sparklines want them.

One Tracker per browser connection: it keeps the previous reading and a short history.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from errands.brokers.contract import Counts
from errands.job import WAITING_STATES, JobState
from errands.web.dashboard.rendering import age, percent

#: Samples a sparkline keeps (one a second: the last minute).
HISTORY: Final = 60
#: Size of a sparkline, in SVG user units.
WIDTH: Final = 240
HEIGHT: Final = 40
STATES: Final = tuple(JobState)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One queue as the overview shows it."""

    name: str
    paused: bool
    counts: dict[str, int]
    depth: int
    oldest: str


def cell_id(queue: str, key: str) -> str:
    """The HTML id of a queue's cell: a digest, so any queue name makes a valid id."""
    digest = hashlib.blake2s(queue.encode(), digest_size=6).hexdigest()
    return f"q{digest}-{key}"


def queue_rows(counts: Counts, now: datetime | None = None) -> list[QueueRow]:
    """Every queue the broker knows, by name."""
    names = sorted(set(counts.by_queue) | set(counts.paused))
    return [_row(name, counts, now or datetime.now(UTC)) for name in names]


def _row(name: str, counts: Counts, now: datetime) -> QueueRow:
    states = counts.by_queue.get(name, {})
    return QueueRow(
        name=name,
        paused=name in counts.paused,
        counts={state.value: states.get(state, 0) for state in STATES},
        depth=sum(states.get(state, 0) for state in WAITING_STATES),
        oldest=age(oldest_waiting(counts, name), now),
    )


def oldest_waiting(counts: Counts, queue: str) -> datetime | None:
    """When the queue's oldest waiting job became due (None: no job waits)."""
    return counts.oldest_waiting.get(queue)


class Tracker:
    """Throughput (completed jobs a second) and failure rate (failed among ended) between
    readings, with their recent history."""

    def __init__(self) -> None:
        self.previous: tuple[float, int, int] | None = None
        self.throughput: deque[float] = deque(maxlen=HISTORY)
        self.failures: deque[float] = deque(maxlen=HISTORY)

    def add(self, counts: Counts, at: float) -> None:
        """Take a reading made at `at` (monotonic seconds)."""
        completed, failed = counts.total(JobState.COMPLETED), counts.total(JobState.FAILED)
        if self.previous is not None:
            then, was_completed, was_failed = self.previous
            seconds = max(at - then, 1e-3)
            # Pruning and requeues lower the counts: a drop is no negative work.
            done, lost = max(completed - was_completed, 0), max(failed - was_failed, 0)
            self.throughput.append(done / seconds)
            self.failures.append(lost / (done + lost) if done + lost else 0.0)
        self.previous = (at, completed, failed)

    def snapshot(self, counts: Counts, now: datetime | None = None) -> dict[str, Any]:
        """What the page's script applies: text per cell id, and points per sparkline."""
        cells: dict[str, str] = {}
        for row in queue_rows(counts, now):
            cells.update({cell_id(row.name, k): str(v) for k, v in row.counts.items()})
            cells[cell_id(row.name, "depth")] = str(row.depth)
            cells[cell_id(row.name, "oldest")] = row.oldest
            cells[cell_id(row.name, "paused")] = "paused" if row.paused else "active"
        for state in STATES:
            cells[f"total-{state.value}"] = str(counts.total(state))
        latest = self.throughput[-1] if self.throughput else None
        cells["throughput"] = "—" if latest is None else f"{latest:.1f}/s"
        cells["failure-rate"] = percent(self.failures[-1] if self.failures else None)
        series = {
            "throughput-line": points(self.throughput),
            "failure-line": points(self.failures, top=1.0),
        }
        return {"cells": cells, "series": series}


def points(values: Iterable[float], top: float | None = None) -> str:
    """An SVG polyline's points for `values`, newest at the right, scaled to `top` (else max)."""
    samples = list(values)
    if not samples:
        return ""
    scale = top or max(max(samples), 1e-9)
    step = WIDTH / (HISTORY - 1)
    start = WIDTH - step * (len(samples) - 1)
    return " ".join(
        f"{start + i * step:.1f},{HEIGHT - min(v / scale, 1.0) * HEIGHT:.1f}"
        for i, v in enumerate(samples)
    )
