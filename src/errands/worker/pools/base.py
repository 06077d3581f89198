"""Pool: where a job's code runs. The worker picks one per job and awaits its Outcome."""

from __future__ import annotations

from typing import Protocol

from errands.brokers.contract import Claimed
from errands.outcome import Outcome
from errands.worker.execution import Invocation


class Pool(Protocol):
    """Runs one invocation to an Outcome; cancelling the awaiting task stops the job if it can."""

    name: str

    async def start(self) -> None:
        """Get ready to run (start threads or child processes)."""
        ...

    async def run(self, claimed: Claimed, invocation: Invocation) -> Outcome:
        """Run the job; never raises for the job's own errors (they become Outcomes)."""
        ...

    async def stop(self) -> None:
        """Release the pool's resources; jobs still running are abandoned (already released)."""
        ...
