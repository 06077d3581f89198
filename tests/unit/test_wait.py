"""errands.wait: the results of many handles, in their order, after one broker wait."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import errands
from errands.brokers.memory import MemoryBroker
from errands.job import Job, JobId, JobState

WITHIN = timedelta(seconds=10)


class CountingBroker(MemoryBroker):
    """A memory broker that records each wait_done call's ids."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[list[JobId]] = []

    async def wait_done(self, job_ids: Sequence[JobId], timeout: timedelta) -> list[Job]:
        self.waits.append(list(job_ids))
        return await super().wait_done(job_ids, timeout)


@pytest.fixture(params=["memory", "sqlite"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[errands.App]:
    """An App on the memory broker (whose blocking wait runs on the portal) and on a SQLite
    file (whose blocking wait runs in the calling thread)."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'wait.db'}"
    made = errands.App(url)
    yield made
    made.close()


@pytest.fixture
def counted() -> Iterator[tuple[errands.App, CountingBroker]]:
    broker = CountingBroker()
    made = errands.App(broker=broker)
    yield made, broker
    made.close()


def test_wait_returns_the_results_in_the_order_of_the_handles(
    counted: tuple[errands.App, CountingBroker],
) -> None:
    app, broker = counted

    @app.task
    def square(n: int) -> int:
        return n * n

    handles = square.enqueue_many([(1,), (2,), (3,)])
    app.run_until_idle()

    assert errands.wait([handles[2], handles[0], handles[1]], timeout=WITHIN) == [9, 1, 4]
    assert broker.waits == [[handles[2].id, handles[0].id, handles[1].id]]  # one call for all
    assert all(handle.state is JobState.COMPLETED for handle in handles)


def test_wait_of_no_handles_is_an_empty_list() -> None:
    assert errands.wait([], timeout=WITHIN) == []


def test_a_failed_job_raises_its_job_failed(app: errands.App) -> None:
    @app.task(max_attempts=1)
    def check(n: int) -> int:
        if n == 2:
            raise ValueError(f"bad {n}")
        return n

    handles = check.enqueue_many([(1,), (2,), (3,)])
    app.run_until_idle()

    with pytest.raises(errands.JobFailed) as caught:
        errands.wait(handles, timeout=WITHIN)

    assert caught.value.job_id == handles[1].id
    assert caught.value.remote_message == "bad 2"
    assert [h.job.state if h.job else None for h in handles] == [
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.COMPLETED,  # fetched by the same wait, though a handle before it raised
    ]


def test_wait_times_out_naming_the_first_unfinished_job(app: errands.App) -> None:
    @app.task
    def noop() -> None: ...

    done = noop.enqueue()
    app.run_until_idle()
    waiting = noop.enqueue()

    with pytest.raises(errands.ResultTimeout) as caught:
        errands.wait([done, waiting], timeout=0.05)

    assert caught.value.job_id == waiting.id
    assert caught.value.timeout == timedelta(seconds=0.05)
    assert caught.value.state is JobState.AVAILABLE


def test_an_unknown_job_raises_job_not_found(app: errands.App) -> None:
    with pytest.raises(errands.JobNotFound, match="no-such-id"):
        errands.wait([app.job("no-such-id")], timeout=WITHIN)


def test_handles_of_two_apps_are_refused(app: errands.App) -> None:
    other = errands.App("memory://")
    try:
        with pytest.raises(ValueError, match="one App"):
            errands.wait([app.job("a"), other.job("b")], timeout=WITHIN)
    finally:
        other.close()


async def test_wait_async_returns_the_results_in_order(app: errands.App) -> None:
    @app.task
    async def echo(value: Any) -> Any:
        return value

    handles = [await echo.enqueue_async(v) for v in ("a", "b")]
    await app.run_until_idle_async()

    assert await errands.wait_async(reversed(handles), timeout=WITHIN) == ["b", "a"]


async def test_wait_blocks_so_it_refuses_to_run_inside_an_event_loop(app: errands.App) -> None:
    with pytest.raises(errands.BlockingCallInEventLoop, match="wait_async"):
        errands.wait([app.job("a")], timeout=WITHIN)
