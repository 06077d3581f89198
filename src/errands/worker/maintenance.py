"""Maintenance every worker runs: rescue the jobs of lapsed leases and of workers gone from this
host, promote due jobs, prune old ones.

Each verb is atomic in the broker, so any number of workers may run them at once; jittered
intervals keep them from doing so in lock step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from datetime import timedelta

from errands.brokers.contract import Broker
from errands.clock import Clock
from errands.policy import rescue
from errands.settings import Settings
from errands.worker.liveness import probe_gone

log = logging.getLogger("errands.worker")
BATCH = 1000


class Maintenance:
    """The rescuer, promoter and pruner on one loop, run by worker `worker_id`."""

    def __init__(
        self, broker: Broker, clock: Clock, settings: Settings, *, worker_id: str = ""
    ) -> None:
        self._broker, self._clock, self._settings = broker, clock, settings
        self._worker_id, self._host = worker_id, socket.gethostname()
        self._next_prune = 0.0
        self.rescued = 0

    async def run_once(self) -> None:
        """One pass: rescue and promote always, prune when due."""
        report = await rescue(
            self._broker,
            limit=BATCH,
            lease=self._settings.lease,
            now=self._clock.now(),
            workers_gone=await self._gone(),
        )
        if report.total:
            self.rescued += report.total
            log.warning(
                "rescued expired leases: %d to retry, %d dead-lettered, %d cancelled",
                len(report.retried),
                len(report.failed),
                len(report.cancelled),
            )
        await self._broker.promote(limit=BATCH)
        if self._clock.monotonic() >= self._next_prune:
            self._next_prune = self._clock.monotonic() + self._settings.prune_every.total_seconds()
            finished_before = self._clock.now() - self._settings.retention
            pruned = await self._broker.prune(finished_before=finished_before, limit=BATCH)
            if pruned:
                log.info("pruned %d finished jobs", pruned)

    async def _gone(self) -> tuple[str, ...]:
        """Workers of this host that still have a heartbeat but whose process has ended."""
        peers = [
            w.id
            for w in await self._broker.workers()
            if w.hostname == self._host and w.id != self._worker_id
        ]
        gone = probe_gone(peers)
        if gone:
            log.warning("workers gone on this host: %s; reclaiming their jobs", ", ".join(gone))
        return tuple(gone)

    async def run(self, stopping: asyncio.Event) -> None:
        """Pass after pass on a jittered interval until `stopping` is set."""
        every = self._settings.rescue_every.total_seconds()
        while not stopping.is_set():
            try:
                await self.run_once()
            except Exception:  # a failing pass is logged; the next one tries again
                log.exception("maintenance pass failed")
            pause = every * random.uniform(0.8, 1.2)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await stopping.wait()


def jitter(delay: timedelta) -> float:
    """`delay` in seconds, +-20%."""
    return delay.total_seconds() * random.uniform(0.8, 1.2)
