"""LimitTable: the memory broker's rate and concurrency limits, by job and by key.

The memory broker claims through brokers/gate.py like the SQL brokers; this table holds what
they keep in columns and a table: each job's limits and each key's stored state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from errands.brokers.gate import Gate, KeyState
from errands.brokers.values import ms_at
from errands.job import Job, JobId, JobState
from errands.limits import Limit, queue_key


class LimitTable:
    """The limits of the stored jobs that have any, and the state of every key admitted."""

    def __init__(self) -> None:
        self.of: dict[JobId, tuple[Limit, ...]] = {}
        self._states: dict[str, KeyState] = {}

    def gate(self, jobs: Mapping[JobId, Job], running: Iterable[JobId], now: datetime) -> Gate:
        """A gate for a claim at `now`: running jobs count while their lease is live (a
        lapsed one no longer holds a place, whether or not it has been rescued yet)."""
        counts: dict[str, int] = {}
        for job_id in running:
            job = jobs[job_id]
            if job.lease_expires_at is None or job.lease_expires_at <= now:
                continue
            keys = {limit.key for limit in self.of.get(job_id, ())} | {queue_key(job.queue)}
            for key in keys:
                counts[key] = counts.get(key, 0) + 1
        tats = {key: state.tat_us for key, state in self._states.items()}
        return Gate(ms_at(now), counts, tats)

    def keep(self, gate: Gate) -> None:
        """Store the key states a claim's admissions changed."""
        for state in gate.states():
            self._states[state.key] = state

    def ready(self, jobs: Mapping[JobId, Job], gate: Gate, queues: set[str]) -> bool:
        """Whether an available job of `queues` would pass `gate` now (the gate is changed:
        give it a fresh one)."""
        return any(
            job.state is JobState.AVAILABLE
            and job.queue in queues
            and gate.admit(self.of.get(job.id, ()))
            for job in jobs.values()
        )

    def next_open(self, now: datetime) -> datetime | None:
        """When the first key a rate holds shut opens again, if any is shut."""
        shut = [
            state.open_at_ms for state in self._states.values() if state.open_at_ms > ms_at(now)
        ]
        if not shut:
            return None
        return now + timedelta(milliseconds=min(shut) - ms_at(now))
