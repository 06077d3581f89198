"""StoreVerbs: the verbs of the RabbitMQ broker that the companion store answers alone (no
ticket is published or acked for them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from errands.brokers import contract
from errands.job import Job, JobId, JobState


class StoreVerbs:
    """Every verb passed to `store` unchanged; RabbitMQBroker adds the ones with tickets."""

    store: contract.Broker

    async def migrate(self) -> None:
        """The store's migrations."""
        await self.store.migrate()

    async def wait_done(self, job_ids: Sequence[JobId], timeout: timedelta) -> list[Job]:
        """The store's wait_done."""
        return await self.store.wait_done(job_ids, timeout)

    async def reclaim(
        self, *, limit: int, lease: timedelta, workers_gone: Sequence[str] = ()
    ) -> list[contract.Claimed]:
        """The store's reclaim (finish then publishes the tickets)."""
        return await self.store.reclaim(limit=limit, lease=lease, workers_gone=workers_gone)

    async def promote(self, *, limit: int) -> int:
        """The store's promote (the tickets are already there, due at the same time)."""
        return await self.store.promote(limit=limit)

    async def prune(self, *, finished_before: datetime, limit: int) -> int:
        """The store's prune."""
        return await self.store.prune(finished_before=finished_before, limit=limit)

    async def get(self, job_ids: Sequence[JobId]) -> list[Job]:
        """The store's get."""
        return await self.store.get(job_ids)

    async def list_jobs(self, query: contract.JobQuery) -> contract.Page:
        """The store's list_jobs."""
        return await self.store.list_jobs(query)

    async def counts(self, queues: Sequence[str] | None = None) -> contract.Counts:
        """The store's counts."""
        return await self.store.counts(queues)

    async def workers(self) -> list[contract.WorkerInfo]:
        """The store's workers."""
        return await self.store.workers()

    async def cancel(self, job_ids: Sequence[JobId], *, reason: str = "requested") -> list[Job]:
        """The store's cancel (a cancelled job's ticket is an orphan, dropped later)."""
        return await self.store.cancel(job_ids, reason=reason)

    async def purge(self, queue: str, states: Sequence[JobState]) -> int:
        """The store's purge."""
        return await self.store.purge(queue, states)

    async def topology(self) -> contract.Topology:
        """The store's topology (routing is decided in errands, not by AMQP exchanges)."""
        return await self.store.topology()

    async def declare(
        self, exchanges: Sequence[contract.Exchange], bindings: Sequence[contract.Binding]
    ) -> None:
        """The store's declare."""
        await self.store.declare(exchanges, bindings)

    async def unbind(self, bindings: Sequence[contract.Binding]) -> int:
        """The store's unbind."""
        return await self.store.unbind(bindings)

    async def schedules(self, names: Sequence[str] | None = None) -> list[contract.ScheduleRecord]:
        """The store's schedules."""
        return await self.store.schedules(names)

    async def put_schedules(
        self, entries: Sequence[contract.ScheduleEntry], *, replace: bool
    ) -> list[bool]:
        """The store's put_schedules."""
        return await self.store.put_schedules(entries, replace=replace)

    async def remove_schedules(self, names: Sequence[str]) -> int:
        """The store's remove_schedules."""
        return await self.store.remove_schedules(names)

    async def pause_schedules(self, names: Sequence[str], *, paused: bool) -> int:
        """The store's pause_schedules."""
        return await self.store.pause_schedules(names, paused=paused)

    async def pause(self, queues: Sequence[str]) -> None:
        """The store's pause (tickets of a paused queue circle through a delay bucket)."""
        await self.store.pause(queues)

    async def resume(self, queues: Sequence[str]) -> None:
        """The store's resume."""
        await self.store.resume(queues)
