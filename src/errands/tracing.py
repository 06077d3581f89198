"""OpenTelemetry traces: an enqueue span per job whose context travels in the envelope as W3C
`traceparent`, and a span per attempt in the worker, linked to it.

`instrument(app)` turns it on (opentelemetry-api, `errands[otel]`); an App never instrumented
pays nothing. Spans go to whatever TracerProvider the program set up: the SDK and exporters
are the application's choice, never errands'.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from errands.brokers.contract import Claimed
from errands.enqueue_hooks import EnqueueHook
from errands.job import JobId
from errands.outcome import Cancelled, Crashed, Failed, Outcome, Retrying
from errands.worker.middleware import Middleware

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from errands.app import App

#: Attributes after OpenTelemetry's messaging conventions, with errands' own beside them.
SYSTEM = "errands"


class _Headers(msgspec.Struct):
    """The one envelope field tracing reads; the decoder skips the others unparsed."""

    headers: dict[str, str] = {}


_headers_of = msgspec.json.Decoder(_Headers).decode


def _otel() -> Any:
    try:
        from opentelemetry import context, propagate, trace
    except ImportError as error:
        raise ImportError(
            "errands.tracing needs opentelemetry-api: pip install 'errands[otel]'"
        ) from error
    return context, propagate, trace


class Tracing(Middleware, EnqueueHook):
    """The producer hook and worker middleware of `instrument`.

    Each job gets an `errands.enqueue <task>` span (kind PRODUCER) as its envelope is built,
    a child of the producer's current span; its context is written to the envelope headers.
    Each attempt gets an `errands.run <task>` span (kind CONSUMER) with a link to that
    context and, unless `parent=False`, that context as its parent too, so the job's attempts
    sit in the producer's trace. The attempt span is current while the task runs in the
    async pool, so spans the task starts nest under it.
    """

    def __init__(self, tracer_provider: TracerProvider | None = None, *, parent: bool = True):
        self._context, self._propagate, trace = _otel()
        self._trace = trace
        self._tracer: Tracer = trace.get_tracer("errands", tracer_provider=tracer_provider)
        self.parent = parent
        self._open: dict[tuple[JobId, int], tuple[Span, object]] = {}

    # -- the producer ------------------------------------------------------------------------

    def headers(self, task: str, queue: str, job_id: JobId) -> Mapping[str, str]:
        """Start and end the job's enqueue span; its context as `traceparent` (and
        `tracestate` when there is one)."""
        span = self._tracer.start_span(
            f"errands.enqueue {task}",
            kind=self._trace.SpanKind.PRODUCER,
            attributes=_attributes("create", task, queue, job_id),
        )
        carrier: dict[str, str] = {}
        self._propagate.inject(carrier, context=self._trace.set_span_in_context(span))
        span.end()  # it marks the job's creation; the broker write is the caller's span's
        return carrier

    # -- the worker --------------------------------------------------------------------------

    def before_job(self, claimed: Claimed) -> None:
        """Start the attempt's span and make it current for the attempt."""
        job, attempt = claimed.job, claimed.lease.attempt
        sent = self._propagate.extract(_carrier(job.payload))
        origin = self._trace.get_current_span(sent).get_span_context()
        links = [self._trace.Link(origin)] if origin.is_valid else []
        attributes = _attributes("process", job.task, job.queue, job.id)
        attributes["errands.attempt"] = attempt
        span = self._tracer.start_span(
            f"errands.run {job.task}",
            context=sent if self.parent else self._context.Context(),
            kind=self._trace.SpanKind.CONSUMER,
            links=links,
            attributes=attributes,
        )
        token = self._context.attach(self._trace.set_span_in_context(span))
        self._open[job.id, attempt] = (span, token)

    def after_job(self, claimed: Claimed, outcome: Outcome, seconds: float) -> None:
        """Record the outcome on the attempt's span (an error status when it failed), end it
        and restore the context before it."""
        opened = self._open.pop((claimed.job.id, claimed.lease.attempt), None)
        if opened is None:
            return
        span, token = opened
        span.set_attribute("errands.outcome", type(outcome).__name__.lower())
        _record(span, outcome, self._trace)
        span.end()
        self._context.detach(token)

    def span_of(self, job_id: JobId) -> Span | None:
        """The span of the attempt running `job_id` in this worker, or None: for code that runs
        outside the job's context (a thread of its own, a process-pool child's parent)."""
        return next((span for (i, _), (span, _) in self._open.items() if i == job_id), None)


def _attributes(operation: str, task: str, queue: str, job_id: JobId) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.destination.name": queue,
        "messaging.message.id": job_id,
        "errands.task": task,
    }


def _carrier(payload: bytes) -> dict[str, str]:
    try:
        return _headers_of(payload).headers
    except (msgspec.DecodeError, msgspec.ValidationError):
        return {}  # a malformed payload is the worker's to dead-letter; its span has no link


def _record(span: Span, outcome: Outcome, trace: Any) -> None:
    match outcome:
        case Retrying(error=error) | Crashed(error=error) | Failed(error=error) if error:
            span.add_event(
                "exception",
                {
                    "exception.type": error.type,
                    "exception.message": error.message,
                    "exception.stacktrace": error.traceback,
                },
            )
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"{error.type}: {error.message}"))
        case Failed(reason=reason):
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(reason)))
        case Cancelled(reason=reason):
            span.set_attribute("errands.cancel_reason", str(reason))


def instrument(
    app: App, tracer_provider: TracerProvider | None = None, *, parent: bool = True
) -> Tracing:
    """Trace `app`'s enqueues and the attempts its workers run (see Tracing); an App already
    instrumented keeps its Tracing and gets no second. Needs opentelemetry-api."""
    found = next((m for m in app.middleware if isinstance(m, Tracing)), None)
    if found is not None:
        return found
    tracing = Tracing(tracer_provider, parent=parent)
    app.middleware.append(tracing)
    app.enqueue_hooks.append(tracing)
    return tracing
