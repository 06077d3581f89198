"""Metrics: GET /metrics in the Prometheus text format (prometheus-client, `errands[web]`).

Gauges are read from the broker at scrape time (counts and worker heartbeats, two cheap
verbs), so any number of API processes report the same figures (ages by this process's clock);
counters are what passed through this process's API since it started.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from errands.brokers.contract import Counts, WorkerInfo
from errands.job import WAITING_STATES, JobState
from errands.web.context import context

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Snapshot(Collector):
    """The broker's figures as read for the scrape in progress."""

    def __init__(self) -> None:
        self.counts = Counts(by_queue={})
        self.workers: list[WorkerInfo] = []
        self.now = datetime.now(UTC)

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "errands_jobs", "Jobs by queue and state.", labels=["queue", "state"]
        )
        depth = GaugeMetricFamily("errands_queue_depth", "Jobs waiting to run.", labels=["queue"])
        paused = GaugeMetricFamily(
            "errands_queue_paused", "1 if the queue is paused.", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "errands_queue_oldest_waiting_seconds",
            "How long the queue's oldest due job has waited (0 when none waits).",
            labels=["queue"],
        )
        for queue in sorted(set(self.counts.by_queue) | set(self.counts.paused)):
            states = self.counts.by_queue.get(queue, {})
            for state in JobState:
                jobs.add_metric([queue, state.value], states.get(state, 0))
            depth.add_metric([queue], sum(states.get(state, 0) for state in WAITING_STATES))
            paused.add_metric([queue], 1 if queue in self.counts.paused else 0)
            since = self.counts.oldest_waiting.get(queue)
            age = 0.0 if since is None else (self.now - since).total_seconds()
            oldest.add_metric([queue], max(0.0, age))
        workers = GaugeMetricFamily("errands_workers", "Workers with a recent heartbeat.")
        workers.add_metric([], len(self.workers))
        slots = GaugeMetricFamily(
            "errands_worker_slots", "Job slots of live workers.", labels=["busy"]
        )
        slots.add_metric(["true"], sum(w.running for w in self.workers))
        slots.add_metric(["false"], sum(max(0, w.concurrency - w.running) for w in self.workers))
        yield from (jobs, depth, paused, oldest, workers, slots)


class Meter:
    """The counters of one API and the registry /metrics renders."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.snapshot = _Snapshot()
        self.registry.register(self.snapshot)
        self._enqueued = Counter(
            "errands_api_enqueued",
            "Jobs enqueued through the API.",
            ["task"],
            registry=self.registry,
        )
        self._claimed = Counter(
            "errands_api_claimed",
            "Jobs claimed through the pull API.",
            ["queue"],
            registry=self.registry,
        )
        self._finished = Counter(
            "errands_api_finished",
            "Jobs finished through the pull API, by the state they ended in.",
            ["queue", "state"],
            registry=self.registry,
        )

    def enqueued(self, tasks: Iterable[str]) -> None:
        """Count calls enqueued through the API, by task."""
        for task in tasks:
            self._enqueued.labels(task).inc()

    def claimed(self, queue: str, n: int) -> None:
        """Count jobs handed out by the pull API."""
        self._claimed.labels(queue).inc(n)

    def finished(self, queue: str, state: str) -> None:
        """Count an outcome stored through the pull API."""
        self._finished.labels(queue, state).inc()


async def metrics(request: Request) -> Response:
    """GET /metrics: the figures in the Prometheus text format."""
    ctx = context(request)
    assert ctx.meter is not None  # the route exists only with a meter
    counts = await ctx.app.call_broker(lambda b: b.counts())
    workers = await ctx.app.call_broker(lambda b: b.workers())
    # Set and rendered with no await between, so a concurrent scrape cannot mix its figures in.
    snapshot = ctx.meter.snapshot
    snapshot.counts, snapshot.workers, snapshot.now = counts, workers, ctx.app.clock.now()
    return Response(generate_latest(ctx.meter.registry), media_type=CONTENT_TYPE)
