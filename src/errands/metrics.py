"""Prometheus metrics of a worker and of this process's producers, and their HTTP exporter.

PrometheusMetrics is worker middleware (job counters, run and wait histograms, slots) and an
enqueue hook (jobs enqueued through the App); `export` serves them for `errands worker
--metrics-port`. Queue-wide gauges read from the broker are the API's (web/metrics.py).
prometheus-client comes with `errands[web]` and is imported only when metrics are made.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from errands.brokers.contract import Claimed, Enqueued
from errands.enqueue_hooks import EnqueueHook
from errands.job import JobSpec
from errands.outcome import Outcome
from errands.worker.middleware import Middleware

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

    from errands.app import App
    from errands.worker.worker import Worker

log = logging.getLogger("errands.metrics")

#: Run times of jobs: from a millisecond to ten minutes.
RUN_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600)
#: Time due jobs waited for a worker: from a millisecond to an hour.
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as error:
        raise ImportError(
            "errands.metrics needs prometheus-client: pip install 'errands[web]'"
        ) from error
    return prometheus_client


class PrometheusMetrics(Middleware, EnqueueHook):
    """Counters and histograms of the jobs a worker runs and the jobs this process enqueues.

    Add it to both lists of an App with `install(app)` (or `errands worker --metrics-port`).
    Each (queue, task) pair's series are looked up once and kept, so a job costs a dict lookup
    and an increment per series. `registry` defaults to a registry of its own; pass
    `prometheus_client.REGISTRY` to report beside the process's other metrics.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        prometheus = _prometheus()
        self.registry: CollectorRegistry = (
            registry if registry is not None else prometheus.CollectorRegistry()
        )
        by_job = ["queue", "task"]
        self._enqueued = prometheus.Counter(
            "errands_jobs_enqueued",
            "Jobs enqueued through this process's App.",
            by_job,
            registry=self.registry,
        )
        self._started = prometheus.Counter(
            "errands_jobs_started",
            "Attempts started by this worker.",
            by_job,
            registry=self.registry,
        )
        self._finished = prometheus.Counter(
            "errands_jobs_finished",
            "Attempts ended in this worker, by outcome.",
            [*by_job, "outcome"],
            registry=self.registry,
        )
        self._run = prometheus.Histogram(
            "errands_job_run_seconds",
            "How long attempts ran.",
            by_job,
            buckets=RUN_BUCKETS,
            registry=self.registry,
        )
        self._wait = prometheus.Histogram(
            "errands_job_wait_seconds",
            "How long due jobs waited until an attempt started.",
            by_job,
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        self._workers: list[Worker] = []
        self.registry.register(_Slots(self._workers))
        self._series: dict[tuple[str, str], _Series] = {}
        self._endings: dict[tuple[str, str, type[Any]], Any] = {}
        self._enqueues: dict[tuple[str, str], Any] = {}

    def _of(self, queue: str, task: str) -> _Series:
        series = self._series.get((queue, task))
        if series is None:
            series = self._series[queue, task] = _Series(
                self._started.labels(queue, task),
                self._run.labels(queue, task),
                self._wait.labels(queue, task),
            )
        return series

    def on_worker_start(self, worker: Worker) -> None:
        """Report this worker's slots from now on."""
        self._workers.append(worker)

    def on_worker_stop(self, worker: Worker) -> None:
        """Stop reporting this worker's slots."""
        self._workers.remove(worker)

    def before_job(self, claimed: Claimed) -> None:
        """Count the start and how long the job waited since it was due (the broker's clock
        on both ends: claims set `started_at`)."""
        job = claimed.job
        series = self._of(job.queue, job.task)
        series.started.inc()
        if job.started_at is not None and job.scheduled_at is not None:
            series.wait.observe(max(0.0, (job.started_at - job.scheduled_at).total_seconds()))

    def after_job(self, claimed: Claimed, outcome: Outcome, seconds: float) -> None:
        """Count the ending by outcome and observe the run time."""
        job = claimed.job
        self._of(job.queue, job.task).run.observe(seconds)
        key = (job.queue, job.task, type(outcome))
        ended = self._endings.get(key)
        if ended is None:
            word = type(outcome).__name__.lower()
            ended = self._endings[key] = self._finished.labels(job.queue, job.task, word)
        ended.inc()

    def enqueued(self, specs: Sequence[JobSpec], stored: Sequence[Enqueued]) -> None:
        """Count the jobs a batch stored, one increment per (queue, task) of the batch; a
        duplicate (its idempotency key held) made no job."""
        tally: dict[tuple[str, str], int] = {}
        for spec, result in zip(specs, stored, strict=True):
            if not result.duplicate:
                key = (spec.queue, spec.task)
                tally[key] = tally.get(key, 0) + 1
        for key, n in tally.items():
            counter = self._enqueues.get(key)
            if counter is None:
                counter = self._enqueues[key] = self._enqueued.labels(*key)
            counter.inc(n)


class _Series:
    """One (queue, task) pair's children of the per-job metrics."""

    __slots__ = ("run", "started", "wait")

    def __init__(self, started: Any, run: Any, wait: Any) -> None:
        self.started, self.run, self.wait = started, run, wait


class _Slots:
    """Slots of the running workers, read at scrape time."""

    def __init__(self, workers: list[Worker]) -> None:
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        """errands_worker_slots{busy=...}: running jobs, and free slots."""
        from prometheus_client.core import GaugeMetricFamily

        slots = GaugeMetricFamily(
            "errands_worker_slots", "Job slots of this process's workers.", labels=["busy"]
        )
        workers = list(self._workers)
        busy = sum(worker.running for worker in workers)
        slots.add_metric(["true"], busy)
        slots.add_metric(["false"], max(0, sum(w.concurrency for w in workers) - busy))
        yield slots


def install(app: App, metrics: PrometheusMetrics | None = None) -> PrometheusMetrics:
    """Make `app`'s workers and producers report to `metrics` (a new PrometheusMetrics when
    None); an App that already has one keeps it and gets no second."""
    found = _installed(app.middleware)
    if found is not None:
        return found
    metrics = metrics or PrometheusMetrics()
    app.middleware.append(metrics)
    app.enqueue_hooks.append(metrics)
    return metrics


def _installed(middleware: Iterable[Middleware]) -> PrometheusMetrics | None:
    return next((m for m in middleware if isinstance(m, PrometheusMetrics)), None)


def export(app: App, *, port: int, host: str = "127.0.0.1") -> PrometheusMetrics:
    """Install metrics on `app` and serve them at http://host:port/metrics from a daemon thread
    of this process (prometheus-client's server), for a worker run without `errands serve`."""
    metrics = install(app)
    _prometheus().start_http_server(port, addr=host, registry=metrics.registry)
    log.info("metrics at http://%s:%d/metrics", host, port)
    return metrics
