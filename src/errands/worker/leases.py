"""Lease keeper: one extend() per tick for every lease the worker holds.

It also carries the heartbeat and reports which jobs have a cancel request; it decides
nothing about the jobs themselves, it tells the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from errands.brokers.contract import Broker, WorkerInfo
from errands.job import JobId, Progress
from errands.lease import Lease

log = logging.getLogger("errands.worker")


class LeaseKeeper:
    """Holds the leases of running and finishing jobs; extends them all in one call."""

    def __init__(
        self,
        broker: Broker,
        lease: timedelta,
        *,
        heartbeat: Callable[[], WorkerInfo],
        on_cancel: Callable[[JobId], None],
        on_lost: Callable[[JobId], None],
    ) -> None:
        self._broker, self._lease = broker, lease
        self._heartbeat, self._on_cancel, self._on_lost = heartbeat, on_cancel, on_lost
        self.held: dict[JobId, Lease] = {}
        self.progress: dict[JobId, Progress] = {}
        self._finishing: set[JobId] = set()
        self.extends = 0

    def hold(self, lease: Lease) -> None:
        """Start keeping `lease` alive."""
        self.held[lease.job_id] = lease

    def report(self, job_id: JobId, progress: Progress) -> None:
        """Keep the latest progress of a held job for the next extend (one write per tick)."""
        if job_id in self.held:
            self.progress[job_id] = progress

    def finishing(self, job_id: JobId) -> None:
        """The job's outcome is on its way to the broker: keep extending its lease until it
        lands, but a lease missing from an extend reply is then no news (the finish may have
        landed first), so the finish's own reply says whether the lease held."""
        self._finishing.add(job_id)

    def drop(self, job_id: JobId) -> None:
        """Stop keeping the lease (its outcome reached the broker)."""
        self.held.pop(job_id, None)
        self.progress.pop(job_id, None)
        self._finishing.discard(job_id)

    async def tick(self) -> None:
        """Extend every held lease, record the heartbeat, deliver cancel requests."""
        leases = list(self.held.values())
        progress, self.progress = self.progress, {}
        reply = await self._broker.extend(
            leases, self._lease, heartbeat=self._heartbeat(), progress=progress
        )
        self.extends += 1
        kept = {lease.job_id for lease in reply.leases}
        for lease in reply.leases:
            if lease.job_id in self.held:
                self.held[lease.job_id] = lease
        for lease in leases:
            gone = lease.job_id not in kept and lease.job_id in self.held
            if gone and lease.job_id not in self._finishing:
                log.warning("lease of job %s was lost; its outcome will be rejected", lease.job_id)
                self._on_lost(lease.job_id)
        for job_id in reply.cancel_requested:
            self._on_cancel(job_id)
