"""`errands.progress(fraction, message)`: a running task's report is stored with the next
lease extension and shown by its handle, in the async, thread and process pools."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import errands
from errands.job import Progress

QUICK = errands.Settings(broker_url="memory://", extend_every=timedelta(milliseconds=50))
WITHIN = 10.0

#: The process-pool App: at module level, so children import it by reference.
proc_app = errands.App(settings=QUICK)


@proc_app.task(name="progress.process", pool="process", queue="cpu")
def halfway_in_a_child(go_on: str) -> str:
    """Report half way, then wait until the test saw it (a file appears)."""
    errands.progress(0.5, "half way")
    deadline = time.monotonic() + WITHIN
    while not Path(go_on).exists():  # another process: a file is the only shared signal
        assert time.monotonic() < deadline, "the test never saw the progress"
        time.sleep(0.01)
    errands.progress(1.0, "done")
    return "finished"


@pytest.fixture
def app() -> Iterator[errands.App]:
    """An App whose workers extend leases (and store progress) every 50 ms."""
    made = errands.App(settings=QUICK)
    yield made
    made.close()


def seen_progress(handle: errands.JobHandle[str]) -> Progress:
    """The job's stored progress once there is one (polls the broker with a deadline)."""
    deadline = time.monotonic() + WITHIN
    while (progress := handle.progress()) is None:
        assert time.monotonic() < deadline, "no progress was stored"
        time.sleep(0.01)
    return progress


def run_in_background(app: errands.App, **options: object) -> threading.Thread:
    """A worker of `app` running until idle, in a thread of its own."""
    thread = threading.Thread(target=app.run_until_idle, kwargs=options, daemon=True)
    thread.start()
    return thread


def test_a_thread_pool_task_reports_progress_its_handle_shows(app: errands.App) -> None:
    go_on = threading.Event()

    @app.task
    def halfway() -> str:
        errands.progress(0.5, "half way")
        assert go_on.wait(WITHIN)
        return "finished"

    handle = halfway.enqueue()
    worker = run_in_background(app)
    assert seen_progress(handle) == Progress(0.5, "half way")
    go_on.set()
    worker.join(WITHIN)
    assert handle.result(timeout=WITHIN) == "finished"


def test_an_async_task_reports_progress_its_handle_shows(app: errands.App) -> None:
    go_on = threading.Event()

    @app.task
    async def halfway() -> str:
        errands.progress(0.25, "a quarter")
        assert await asyncio.to_thread(go_on.wait, WITHIN)
        return "finished"

    handle = halfway.enqueue()
    worker = run_in_background(app)
    assert seen_progress(handle) == Progress(0.25, "a quarter")
    go_on.set()
    worker.join(WITHIN)
    assert handle.result(timeout=WITHIN) == "finished"


def test_a_process_pool_task_reports_progress_through_its_pipe(tmp_path: Path) -> None:
    flag = tmp_path / "go-on"
    handle = halfway_in_a_child.enqueue(str(flag))
    worker = run_in_background(proc_app, queues=["cpu"], processes=1)
    try:
        assert seen_progress(handle) == Progress(0.5, "half way")
    finally:
        flag.touch()
        worker.join(WITHIN)
    assert handle.result(timeout=WITHIN) == "finished"


def test_progress_outside_a_task_raises_lookup_error() -> None:
    with pytest.raises(LookupError, match="inside a task"):
        errands.progress(0.5)


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan"), "half"])
def test_a_fraction_outside_zero_to_one_is_refused_naming_it(fraction: object) -> None:
    with pytest.raises(ValueError, match="from 0 to 1"):
        errands.progress(fraction)  # type: ignore[arg-type]
