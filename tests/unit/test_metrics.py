"""errands.metrics: what a worker and its producers report, scraped and parsed as Prometheus
would read it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import errands
from errands import metrics
from errands.metrics import PrometheusMetrics
from errands.testing import FakeClock


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def job(name: str, task: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The key of a sample of job `task` in queue default, with more labels."""
    return name, tuple(sorted({"queue": "default", "task": task, **labels}.items()))


@pytest.fixture
def clock() -> FakeClock:
    """Time for the App and its memory broker."""
    return FakeClock()


@pytest.fixture
def app(clock: FakeClock) -> Iterator[errands.App]:
    """A memory App with metrics installed, and two tasks: one returns, one fails for good."""
    made = errands.App("memory://", clock=clock)

    @made.task(name="ok")
    def ok(n: int) -> int:
        return n

    @made.task(name="boom", max_attempts=1)
    def boom() -> None:
        raise ValueError("boom")

    yield made
    made.close()


def test_started_finished_and_run_times_are_counted_per_queue_task_and_outcome(
    app: errands.App,
) -> None:
    installed = metrics.install(app)
    for n in range(3):
        app.enqueue("ok", n)
    app.enqueue("boom")

    assert app.run_until_idle() == 4

    seen = scrape(installed.registry)
    assert seen[job("errands_jobs_enqueued_total", "ok")] == 3
    assert seen[job("errands_jobs_started_total", "ok")] == 3
    assert seen[job("errands_jobs_finished_total", "ok", outcome="completed")] == 3
    assert seen[job("errands_jobs_finished_total", "boom", outcome="failed")] == 1
    assert seen[job("errands_job_run_seconds_count", "ok")] == 3
    assert seen[job("errands_job_run_seconds_count", "boom")] == 1


def test_wait_time_runs_from_when_the_job_was_due_to_its_start(
    app: errands.App, clock: FakeClock
) -> None:
    installed = metrics.install(app)
    app.by_name("ok").options(delay=timedelta(seconds=10)).enqueue(1)
    clock.advance(timedelta(seconds=25))  # due at 10 s, started at 25 s: waited 15 s

    app.run_until_idle()

    seen = scrape(installed.registry)
    assert seen[job("errands_job_wait_seconds_count", "ok")] == 1
    assert seen[job("errands_job_wait_seconds_sum", "ok")] == 15.0
    assert seen[job("errands_job_wait_seconds_bucket", "ok", le="10.0")] == 0
    assert seen[job("errands_job_wait_seconds_bucket", "ok", le="30.0")] == 1


def test_an_enqueue_matching_a_held_idempotency_key_counts_no_job(app: errands.App) -> None:
    installed = metrics.install(app)
    keyed = app.by_name("ok").options(idempotency_key="once")
    keyed.enqueue(1)
    assert keyed.enqueue(1).duplicate

    assert scrape(installed.registry)[job("errands_jobs_enqueued_total", "ok")] == 1


def test_busy_slots_count_the_jobs_running_at_the_scrape() -> None:
    app = errands.App("memory://")
    installed = metrics.install(app)
    during: list[dict[tuple[str, tuple[tuple[str, str], ...]], float]] = []

    @app.task(name="look")
    async def look() -> None:
        during.append(scrape(installed.registry))  # scraped while this very job runs

    app.enqueue("look")
    app.run_until_idle(concurrency=4)
    app.close()

    [seen] = during
    assert seen[("errands_worker_slots", (("busy", "true"),))] == 1
    assert seen[("errands_worker_slots", (("busy", "false"),))] == 3
    after = scrape(installed.registry)  # the worker stopped: it reports no slot
    assert after[("errands_worker_slots", (("busy", "true"),))] == 0


def test_install_twice_keeps_one_set_of_metrics(app: errands.App) -> None:
    first = metrics.install(app)
    assert metrics.install(app) is first
    assert [m for m in app.middleware if isinstance(m, PrometheusMetrics)] == [first]
    assert app.enqueue_hooks == [first]


def test_an_app_without_metrics_has_no_enqueue_hook(app: errands.App) -> None:
    assert app.enqueue_hooks == []
    assert not any(isinstance(m, PrometheusMetrics) for m in app.middleware)


def test_without_prometheus_client_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # an import now fails
    with pytest.raises(ImportError, match=r"errands\[web\]"):
        PrometheusMetrics()
