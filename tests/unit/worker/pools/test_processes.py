"""The process pool: CPU work in supervised children; a child's death is a crash of its job."""

from __future__ import annotations

import os
from datetime import timedelta

import psutil
import pytest

import errands
from errands.brokers.contract import ClaimOptions
from errands.job import ErrorKind, FailReason, JobState
from errands.worker.pools.processes import ProcessPool
from tests.unit.worker.conftest import run_worker
from tests.unit.worker.pools import procapp

WITHIN = timedelta(seconds=10)


def test_a_cpu_task_runs_in_a_child_process_and_returns_its_value() -> None:
    handle = procapp.cpu.enqueue(1000)

    assert procapp.app.run_until_idle(processes=1) == 1

    value = handle.result(timeout=WITHIN)
    assert value["value"] == sum(i * i for i in range(1000))
    assert value["pid"] != os.getpid()


def test_a_child_that_exits_is_a_crash_and_dead_letters_at_max_crashes() -> None:
    crasher = procapp.exits.enqueue(3)
    after = procapp.cpu.enqueue(10)

    worker = run_worker(procapp.app, processes=1)

    job = crasher.refresh()
    assert job.state is JobState.FAILED
    assert job.fail_reason is FailReason.CRASHED
    assert (job.crashes, job.attempt, job.failures) == (2, 2, 0)
    assert [e.kind for e in job.errors] == [ErrorKind.EXIT, ErrorKind.EXIT]
    assert all("exited with 3" in e.message for e in job.errors)
    with pytest.raises(errands.JobFailed, match="crashed"):
        crasher.result(timeout=WITHIN)
    # Each dead child was replaced, and the replacement ran the next job.
    pool = worker.pool("process")
    assert isinstance(pool, ProcessPool)
    assert pool.replaced == 2
    assert after.result(timeout=WITHIN)["value"] == sum(i * i for i in range(10))


def test_a_soft_time_limit_raises_timeout_inside_the_child() -> None:
    handle = procapp.oversleeps.enqueue()

    worker = run_worker(procapp.app, processes=1)

    job = handle.refresh()
    assert (job.state, job.fail_reason) == (JobState.FAILED, FailReason.ERROR)
    assert job.crashes == 0
    assert job.errors[-1].kind is ErrorKind.TIMEOUT
    assert job.errors[-1].type == "Timeout"
    assert "soft time limit" in job.errors[-1].message
    pool = worker.pool("process")
    assert isinstance(pool, ProcessPool)
    assert pool.replaced == 0


def test_a_task_that_catches_its_soft_limit_and_returns_still_fails_with_timeout() -> None:
    handle = procapp.shrugs.enqueue()

    run_worker(procapp.app, processes=1)

    job = handle.refresh()
    assert (job.state, job.fail_reason, job.result) == (JobState.FAILED, FailReason.ERROR, None)
    assert job.errors[-1].kind is ErrorKind.TIMEOUT
    assert "soft time limit" in job.errors[-1].message


def test_past_the_hard_limit_the_child_is_killed_and_replaced() -> None:
    stuck = procapp.stubborn.enqueue()

    worker = run_worker(procapp.impatient, processes=1)
    after = procapp.pid.enqueue()
    assert procapp.impatient.run_until_idle(processes=1) == 1

    job = stuck.refresh()
    assert (job.state, job.fail_reason) == (JobState.FAILED, FailReason.ERROR)
    assert job.errors[-1].kind is ErrorKind.TIMEOUT
    assert "hard time limit" in job.errors[-1].message
    pool = worker.pool("process")
    assert isinstance(pool, ProcessPool)
    assert pool.replaced >= 1
    assert after.result(timeout=WITHIN) != os.getpid()


def test_children_are_gone_after_the_worker_stops() -> None:
    handle = procapp.cpu.enqueue(1)

    worker = run_worker(procapp.app, processes=2)

    child_pid = handle.result(timeout=WITHIN)["pid"]
    try:
        child = psutil.Process(child_pid)
    except psutil.NoSuchProcess:
        child = None
    if child is not None:
        _, alive = psutil.wait_procs([child], timeout=10)
        assert alive == []
    pool = worker.pool("process")
    assert isinstance(pool, ProcessPool)
    assert pool.pids == []


def test_jobs_are_prefetched_per_child_so_claims_come_in_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handles = procapp.cpu.enqueue_many([(10,)] * 24)
    broker = procapp.app.broker
    claims: list[int] = []
    claim = broker.claim

    async def counted(options: ClaimOptions) -> list[errands.Claimed]:
        got = await claim(options)
        if got:
            claims.append(len(got))
        return got

    monkeypatch.setattr(broker, "claim", counted)

    worker = run_worker(procapp.app, processes=1, prefetch=3)

    assert worker.capacity == 1 + 3
    assert sum(claims) == 24
    assert len(claims) <= 24 // 2  # one claim per two jobs at most, not one per job
    assert all(h.result(timeout=WITHIN)["value"] == 285 for h in handles)


def test_without_prefetch_a_worker_holds_no_more_jobs_than_its_children() -> None:
    procapp.cpu.enqueue_many([(10,)] * 3)

    worker = run_worker(procapp.app, processes=1, prefetch=0)

    assert worker.capacity == 1
    assert worker.ran == 3
