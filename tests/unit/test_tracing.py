"""errands.tracing: enqueue spans whose context travels in the envelope, attempt spans linked
to them, recorded by the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import errands
from errands import tracing
from errands.testing import FakeClock


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """Where the spans of the test's provider end up."""
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    """A TracerProvider of the test's own (the global one is never set)."""
    made = TracerProvider()
    made.add_span_processor(SimpleSpanProcessor(exporter))
    return made


@pytest.fixture
def clock() -> FakeClock:
    """Time for the App and its memory broker."""
    return FakeClock()


@pytest.fixture
def app(clock: FakeClock) -> Iterator[errands.App]:
    """A memory App on the test's clock."""
    made = errands.App("memory://", clock=clock)
    yield made
    made.close()


def ids(context: trace.SpanContext | None) -> tuple[int, int] | None:
    """A span context's trace and span id (a link's copy is marked remote; the ids match)."""
    return None if context is None else (context.trace_id, context.span_id)


def named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    """The finished spans whose name starts with `prefix`, in the order they ended."""
    return [span for span in exporter.get_finished_spans() if span.name.startswith(prefix)]


def test_an_attempt_span_links_to_the_enqueue_span_whose_context_the_envelope_carries(
    app: errands.App, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing.instrument(app, provider)
    inner: list[trace.SpanContext] = []

    @app.task(name="shop.pack")
    async def pack(order: int) -> int:
        inner.append(trace.get_current_span().get_span_context())
        return order

    with provider.get_tracer("test").start_as_current_span("checkout") as checkout:
        handle = pack.enqueue(7)
    app.run_until_idle()

    [enqueue] = named(exporter, "errands.enqueue")
    [attempt] = named(exporter, "errands.run")
    assert enqueue.name == "errands.enqueue shop.pack"
    assert enqueue.kind is SpanKind.PRODUCER
    assert enqueue.parent is not None
    assert enqueue.parent.span_id == checkout.get_span_context().span_id
    assert attempt.name == "errands.run shop.pack"
    assert attempt.kind is SpanKind.CONSUMER
    assert [ids(link.context) for link in attempt.links] == [ids(enqueue.context)]
    assert attempt.context.trace_id == enqueue.context.trace_id
    assert attempt.parent is not None
    assert attempt.parent.span_id == enqueue.context.span_id
    assert attempt.attributes is not None
    assert attempt.attributes["messaging.message.id"] == handle.id
    assert attempt.attributes["messaging.destination.name"] == "default"
    assert attempt.attributes["errands.attempt"] == 1
    assert attempt.attributes["errands.outcome"] == "completed"
    assert attempt.status.status_code is StatusCode.UNSET
    # The async pool runs the task with its attempt span current.
    assert inner == [attempt.context]
    # The context travels in the stored envelope, as W3C traceparent.
    [job] = app.portal.call(app.broker.get, [handle.id])
    headers = json.loads(job.payload)["headers"]
    trace_id, span_id = f"{enqueue.context.trace_id:032x}", f"{enqueue.context.span_id:016x}"
    flags = f"{enqueue.context.trace_flags:02x}"
    assert headers["traceparent"] == f"00-{trace_id}-{span_id}-{flags}"


def test_each_attempt_of_a_retried_job_gets_a_span_linked_to_the_one_enqueue(
    app: errands.App, clock: FakeClock, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing.instrument(app, provider)
    calls: list[int] = []

    @app.task(name="flaky", max_attempts=2)
    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("try again")
        return "done"

    flaky.enqueue()
    app.run_until_idle()
    clock.advance(timedelta(hours=1))  # past the retry's backoff
    app.run_until_idle()

    [enqueue] = named(exporter, "errands.enqueue")
    first, second = named(exporter, "errands.run")
    for attempt in (first, second):
        assert [ids(link.context) for link in attempt.links] == [ids(enqueue.context)]
        assert attempt.context.trace_id == enqueue.context.trace_id
    assert [s.attributes and s.attributes["errands.attempt"] for s in (first, second)] == [1, 2]
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description == "ConnectionError: try again"
    assert first.attributes is not None
    assert first.attributes["errands.outcome"] == "retrying"
    [event] = first.events
    assert event.attributes is not None
    assert (event.name, event.attributes["exception.type"]) == ("exception", "ConnectionError")
    assert second.status.status_code is StatusCode.UNSET


def test_with_parent_false_an_attempt_starts_its_own_trace_and_keeps_the_link(
    app: errands.App, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracing.instrument(app, provider, parent=False)

    @app.task(name="solo")
    def solo() -> None:
        return None

    solo.enqueue()
    app.run_until_idle()

    [enqueue] = named(exporter, "errands.enqueue")
    [attempt] = named(exporter, "errands.run")
    assert attempt.parent is None
    assert attempt.context.trace_id != enqueue.context.trace_id
    assert [ids(link.context) for link in attempt.links] == [ids(enqueue.context)]


def test_a_job_sent_without_a_traceparent_still_gets_an_attempt_span_without_a_link(
    app: errands.App, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    @app.task(name="plain")
    def plain() -> None:
        return None

    plain.enqueue()  # before instrumenting: no traceparent in its envelope
    tracing.instrument(app, provider)
    app.run_until_idle()

    assert named(exporter, "errands.enqueue") == []
    [attempt] = named(exporter, "errands.run")
    assert list(attempt.links) == []


def test_a_callers_own_traceparent_header_wins(app: errands.App, provider: TracerProvider) -> None:
    tracing.instrument(app, provider)

    @app.task(name="relay")
    def relay() -> None:
        return None

    mine = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    handle = relay.options(headers={"traceparent": mine}).enqueue()
    [job] = app.portal.call(app.broker.get, [handle.id])
    assert json.loads(job.payload)["headers"]["traceparent"] == mine


def test_instrument_twice_keeps_one_tracing(app: errands.App, provider: TracerProvider) -> None:
    first = tracing.instrument(app, provider)
    assert tracing.instrument(app, provider) is first
    assert app.enqueue_hooks == [first]


def test_without_opentelemetry_the_error_names_the_extra(
    app: errands.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # an import now fails
    with pytest.raises(ImportError, match=r"errands\[otel\]"):
        tracing.instrument(app)
    assert app.enqueue_hooks == []
