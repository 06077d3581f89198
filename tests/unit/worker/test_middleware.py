"""Middleware: hooks around the worker and each job, isolated from the jobs they observe; the
per-job log line is the first of them."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest

import errands
from errands.brokers.contract import Claimed
from errands.outcome import Completed, Failed, Outcome
from errands.settings import Settings
from errands.worker.middleware import JobLog, Middleware
from errands.worker.worker import Worker


class Recorder(Middleware):
    """Writes down every hook call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def on_worker_start(self, worker: Worker) -> None:
        self.calls.append(("start", worker.id))

    def on_worker_stop(self, worker: Worker) -> None:
        self.calls.append(("stop", worker.id))

    def before_job(self, claimed: Claimed) -> None:
        self.calls.append(("before", claimed.job.id))

    def after_job(self, claimed: Claimed, outcome: Outcome, seconds: float) -> None:
        assert seconds >= 0
        self.calls.append(("after", (claimed.job.id, type(outcome))))


class Broken(Middleware):
    """Fails in every hook."""

    def before_job(self, claimed: Claimed) -> None:
        raise RuntimeError("before")

    def after_job(self, claimed: Claimed, outcome: Outcome, seconds: float) -> None:
        raise RuntimeError("after")


@pytest.fixture
def recorded() -> Iterator[tuple[errands.App, Recorder]]:
    recorder = Recorder()
    made = errands.App("memory://", middleware=[recorder])
    yield made, recorder
    made.close()


def test_hooks_run_around_the_worker_and_each_job_with_its_outcome(
    recorded: tuple[errands.App, Recorder],
) -> None:
    app, recorder = recorded

    @app.task(max_attempts=1)
    def check(ok: bool) -> str:
        if not ok:
            raise ValueError("no")
        return "yes"

    good, bad = check.enqueue(True), check.enqueue(False)
    worker = app.worker()
    app.portal.call(worker.run, until_idle=True)

    assert recorder.calls[0] == ("start", worker.id)
    assert recorder.calls[-1] == ("stop", worker.id)
    jobs = recorder.calls[1:-1]
    assert sorted(c for c in jobs if c[0] == "before") == sorted(
        [("before", good.id), ("before", bad.id)]
    )
    assert ("after", (good.id, Completed)) in jobs
    assert ("after", (bad.id, Failed)) in jobs
    assert jobs.index(("before", good.id)) < jobs.index(("after", (good.id, Completed)))


def test_a_failing_middleware_changes_no_outcome(caplog: pytest.LogCaptureFixture) -> None:
    app = errands.App("memory://", middleware=[Broken()])
    try:

        @app.task
        def one() -> int:
            return 1

        handle = one.enqueue()
        app.run_until_idle()

        assert handle.result(timeout=10) == 1
        assert "middleware Broken.before_job failed" in caplog.text
    finally:
        app.close()


def test_a_worker_can_be_given_its_own_middleware(app: errands.App) -> None:
    recorder = Recorder()

    @app.task
    def one() -> int:
        return 1

    handle = one.enqueue()
    app.portal.call(app.worker(middleware=[recorder]).run, until_idle=True)

    assert ("before", handle.id) in recorder.calls


def test_one_info_line_per_finished_job_with_task_id_attempt_duration_and_outcome(
    app: errands.App, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task
    def greet(name: str) -> str:
        return f"hello {name}"

    handle = greet.enqueue("ada")
    with caplog.at_level(logging.INFO, logger="errands.jobs"):
        app.run_until_idle()

    [line] = [r for r in caplog.records if r.name == "errands.jobs"]
    assert line.levelno == logging.INFO
    assert re.fullmatch(
        rf"{re.escape(greet.name)} {handle.id} attempt 1 completed in \d+\.\dms", line.message
    )


def test_the_info_line_is_off_with_a_setting_while_retries_are_still_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = errands.App("memory://", settings=Settings(broker_url="memory://", log_jobs=False))
    try:

        @app.task(max_attempts=2, retry=errands.RetryPolicy(base=timedelta(0)))
        def flaky(n: int) -> int:
            if n < 0:
                raise ValueError("negative")
            return n

        flaky.enqueue(1)
        flaky.enqueue(-1)
        with caplog.at_level(logging.INFO, logger="errands.jobs"):
            app.run_until_idle()

        levels = sorted(r.levelname for r in caplog.records if r.name == "errands.jobs")
        assert levels == ["ERROR", "WARNING"]  # a retry, then the dead letter; no INFO line
    finally:
        app.close()


def test_the_setting_comes_from_the_environment() -> None:
    assert Settings.from_env({"ERRANDS_LOG_JOBS": "0"}).log_jobs is False
    assert Settings.from_env({"ERRANDS_LOG_JOBS": "1"}).log_jobs is True
    with pytest.raises(ValueError, match="ERRANDS_LOG_JOBS"):
        Settings.from_env({"ERRANDS_LOG_JOBS": "maybe"})


def test_job_log_is_an_apps_default_middleware(app: errands.App) -> None:
    assert [type(m) for m in app.middleware] == [JobLog]
