"""Workflow steps run by worker subprocesses in the workflow kill test; each run writes to the
timed ledger (tests/system/chaos/ledger.py) so the checker sees every start and end."""

from __future__ import annotations

import os
import time

import errands
from tests.system.chaos.ledger import record_timed

app = errands.App()  # ERRANDS_BROKER_URL is set by the test
CHAOS_LEDGER = os.environ.get("ERRANDS_TEST_CHAOS_LEDGER", "/dev/null")
WORKER_TAG = os.environ.get("ERRANDS_TEST_WORKER_TAG", "-")
CRASHES = 1000  # kills are the point: a step is never dead-lettered for them


def register(target: errands.App) -> tuple[errands.Task[..., list[str]], ...]:
    """Register the steps on `target` (the workers' App here, the test's producer App there, so
    its calls carry the same names and budgets)."""

    @target.task(name="wf_step", max_crashes=CRASHES)
    def step(trail: list[str], key: str, seconds: float) -> list[str]:
        """A chain step: appends its key to the trail the previous step returned."""
        ran(key, seconds)
        return [*trail, key]

    @target.task(name="wf_member", max_crashes=CRASHES)
    def member(key: str, seconds: float) -> list[str]:
        """A chord member: returns its key."""
        ran(key, seconds)
        return [key]

    @target.task(name="wf_gather", max_crashes=CRASHES)
    def gather(results: list[list[str]], key: str) -> list[str]:
        """A chord callback: every member's key, in member order."""
        ran(key, 0.005)
        return [item for result in results for item in result]

    return step, member, gather


def ran(key: str, seconds: float) -> None:
    """One run of the step `key`, on the ledger."""
    record_timed(CHAOS_LEDGER, "start", key, WORKER_TAG)
    time.sleep(seconds)
    record_timed(CHAOS_LEDGER, "end", key, WORKER_TAG)


register(app)
