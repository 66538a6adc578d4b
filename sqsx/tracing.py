"""OpenTelemetry traces across the queue, as a hook; imported only when asked for.

Needs ``opentelemetry-api`` (``pip install 'sqsx[tracing]'``) and, to record anything, a
tracer provider configured by the application (``opentelemetry-sdk`` and an exporter).

- Sending (``add_task``, ``send_task(s)``, ``add_message``, ``send_message(s)``): a
  ``create`` span (kind PRODUCER), the message's creation context, whose W3C
  ``traceparent`` (and ``tracestate``) go into message attributes. SQS allows ten message
  attributes: a message that already has ten, or that the attribute would take over the
  size limit, is sent without it (a DEBUG line says so).
- Processing, in both runtimes: a ``process <queue>`` span (kind CONSUMER) per message,
  child of the producer's context (``traceparent``, else the ``AWSTraceHeader`` system
  attribute X-Ray and Lambda set), current while the handler runs, so the handler's own
  spans join the trace. Its attributes follow OpenTelemetry's messaging semantic
  conventions (https://opentelemetry.io/docs/specs/semconv/messaging/messaging-spans/ and
  .../messaging/sqs/): ``messaging.system`` ``aws_sqs``, ``messaging.destination.name``,
  ``messaging.message.id``, ``messaging.operation.type`` / ``.name`` ``process``,
  ``aws.sqs.queue.url``; and sqsx's ``sqsx.receive_count``, ``sqsx.task``,
  ``sqsx.verdict`` (the conventions define no receive count). An exception raised by the
  handler is recorded as an event and marks the span as an error; ``Retry`` and ``NoRetry``
  do not; an unprocessable message does.
- Lambda: ``LambdaHandler(queue, tracing=True)`` makes one ``process <queue>`` span per
  invocation (kind CONSUMER, ``messaging.batch.message_count``) linked to each record's
  producer context, the conventions' shape for a batch ("a single Process span can
  account for a batch of messages; for each message it accounts for, it SHOULD link to
  the message's creation context"). It is current in every thread that runs a record's
  handler, so the handler's spans are its children; an exception a handler raised is an
  event on it (with the record's message id) and marks it as an error. No span per
  record: the SDK spends tens of microseconds on one, several times what the rest of a
  record costs. ``Tracing(lambda_record_spans=True)`` adds them back (as in the worker,
  continuing the producer's trace). The SDK keeps 128 links per span unless
  ``OTEL_SPAN_LINK_COUNT_LIMIT`` says otherwise. A record processed outside such an
  invocation (the hook on a queue whose ``LambdaHandler`` has ``tracing=False``) gets a
  span of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sqsx.codec import DEFAULT_MAX_MESSAGE_BYTES
from sqsx.dispatch import Outcome, Verdict
from sqsx.hooks import Hook, Processing
from sqsx.message import Message
from sqsx.sending import OutgoingMessage
from sqsx.tracecontext import producer_context, record_context

__all__ = ["MAX_MESSAGE_ATTRIBUTES", "Tracing", "producer_context"]

logger = logging.getLogger(__name__)

#: SQS accepts at most ten message attributes per message.
#: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html
MAX_MESSAGE_ATTRIBUTES = 10
_SYSTEM = "aws_sqs"
_PROPAGATOR = TraceContextTextMapPropagator()


class Tracing(Hook):
    """Producer and consumer spans for every message sent and processed (see module docs).

    Args:
        tracer_provider: the provider to take the tracer from; default the global one.
        max_message_bytes: the queue's size limit; trace attributes that would take a
            message over it are left out (default 1 MiB, as ``Queue``'s).
        lambda_record_spans: in a ``LambdaHandler(tracing=True)`` invocation, also a span
            per record (default: the invocation span alone, see the module docs).
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        lambda_record_spans: bool = False,
    ) -> None:
        from sqsx import __version__

        self._tracer = trace.get_tracer("sqsx", __version__, tracer_provider=tracer_provider)
        self._max_bytes = max_message_bytes
        self._record_spans = lambda_record_spans
        self._queues: dict[str, tuple[str, dict[str, Any]]] = {}
        # message id -> the invocation span (and its context) that accounts for it
        self._batches: dict[str, tuple[trace.Span, otel_context.Context]] = {}

    def _queue(self, queue_url: str) -> tuple[str, dict[str, Any]]:
        """The queue's span name and the attributes its every process span has."""
        found = self._queues.get(queue_url)
        if found is None:
            name = queue_url.rstrip("/").rsplit("/", 1)[-1]
            found = self._queues[queue_url] = (
                f"process {name}",
                {
                    "messaging.system": _SYSTEM,
                    "messaging.destination.name": name,
                    "messaging.operation.type": "process",
                    "messaging.operation.name": "process",
                    "aws.sqs.queue.url": queue_url,
                },
            )
        return found

    @property
    def tracer(self) -> trace.Tracer:
        """The tracer sqsx's spans come from."""
        return self._tracer

    @property
    def lambda_record_spans(self) -> bool:
        """True when a ``LambdaHandler(tracing=True)`` invocation gets a span per record too."""
        return self._record_spans

    # -- sending ---------------------------------------------------------------------------

    def before_send(self, outgoing: OutgoingMessage) -> OutgoingMessage:
        attributes = {
            "messaging.system": _SYSTEM,
            "messaging.operation.type": "create",
            "messaging.operation.name": "create",
        }
        with self._tracer.start_as_current_span(
            "create", kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            added = _fitting(outgoing, carrier, self._max_bytes)
            if not added:
                span.set_attribute("sqsx.trace_context_sent", False)
                return outgoing
        return OutgoingMessage(
            outgoing.body,
            {**outgoing.attributes, **added},
            outgoing.delay_seconds,
            outgoing.group_id,
            outgoing.deduplication_id,
        )

    # -- processing ------------------------------------------------------------------------

    def before_process(self, processing: Processing) -> None:
        message = processing.message
        if processing.runtime == "lambda" and not self._record_spans:
            batch = self._batches.get(message.message_id)
            if batch is not None:  # the invocation span accounts for it: make it current
                span, current = batch  # (it already is in the invocation's own thread)
                token = (
                    None if otel_context.get_current() is current else otel_context.attach(current)
                )
                processing.state[self] = (span, token, False)
                return
        parent = producer_context(message)
        name, attributes = self._queues.get(processing.queue_url) or self._queue(
            processing.queue_url
        )
        span = self._tracer.start_span(
            name,
            context=trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent else None,
            kind=SpanKind.CONSUMER,
            attributes={
                **attributes,
                "messaging.message.id": message.message_id,
                "sqsx.receive_count": message.receive_count,
                "sqsx.task": processing.task,
                "sqsx.runtime": processing.runtime,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        processing.state[self] = (span, token, True)

    def after_process(self, processing: Processing, outcome: Outcome) -> None:
        found = processing.state.pop(self, None)
        if found is None:
            return
        span, token, own = found
        if not own:  # the invocation's span: only what went wrong, with the record's id
            try:
                self.record_failure(span, processing.message, outcome)
            finally:
                if token is not None:
                    otel_context.detach(token)
            return
        try:
            if not span.is_recording():
                return
            if outcome.retry_after is None:
                span.set_attribute("sqsx.verdict", outcome.verdict.value)
            else:
                span.set_attributes(
                    {
                        "sqsx.verdict": outcome.verdict.value,
                        "sqsx.retry_after_seconds": outcome.retry_after,
                    }
                )
            _record_error(span, outcome)
        finally:
            span.end()
            otel_context.detach(token)

    # -- Lambda ----------------------------------------------------------------------------

    @contextmanager
    def invocation_span(self, messages: Sequence[Message], name: str) -> Iterator[trace.Span]:
        """A CONSUMER span over one Lambda invocation, linked to each message's producer
        context; current inside the ``with`` block, and, for the messages that run through
        this hook meanwhile, in their threads, with their errors recorded on it
        (``LambdaHandler`` uses ``lambda_span`` instead)."""
        links = [Link(ctx) for ctx in map(producer_context, messages) if ctx is not None]
        with self._batch_span(links, len(messages), name) as span:
            if self._record_spans:
                yield span
                return
            batch = (span, otel_context.get_current())
            ids = [m.message_id for m in messages]
            self._batches.update(dict.fromkeys(ids, batch))
            try:
                yield span
            finally:
                for message_id in ids:
                    self._batches.pop(message_id, None)

    def lambda_span(self, records: Sequence[Mapping[str, Any]], name: str) -> Any:
        """``invocation_span`` over an event's records, as ``LambdaHandler`` uses it: read
        from the records as they are, and not through this hook per record (the handler
        runs each record in a copy of the context where the span is current, and hands
        their failures to ``record_failure`` once they are done)."""
        links = [Link(ctx) for ctx in map(record_context, records) if ctx is not None]
        return self._batch_span(links, len(records), name)

    def _batch_span(self, links: Sequence[Link], count: int, name: str) -> Any:
        # (no messaging.message.id on the links: the SDK's attribute checks would double
        # the per-record cost; an exception event names its record)
        return self._tracer.start_as_current_span(
            f"process {name}",
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": _SYSTEM,
                "messaging.destination.name": name,
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.batch.message_count": count,
            },
        )

    @staticmethod
    def record_failure(span: trace.Span, message: Message, outcome: Outcome) -> None:
        """Put on an invocation's ``span`` what went wrong with ``message``, if anything:
        an exception event and the error status, with the record's message id."""
        if outcome.error is not None or outcome.verdict is Verdict.UNPROCESSABLE:
            _record_error(span, outcome, {"messaging.message.id": message.message_id})


def _record_error(span: trace.Span, outcome: Outcome, attributes: Any = None) -> None:
    """An exception event and the error status, if the handler raised an exception (not
    ``Retry`` / ``NoRetry``: they never get here) or the message was unreadable."""
    error = outcome.error
    if error is not None:
        span.record_exception(error, attributes)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    elif outcome.verdict is Verdict.UNPROCESSABLE:
        if attributes:
            span.add_event("unprocessable message", attributes)
        span.set_status(Status(StatusCode.ERROR, "unprocessable message"))


def _fitting(
    outgoing: OutgoingMessage, carrier: Mapping[str, str], max_bytes: int
) -> dict[str, Mapping[str, Any]]:
    """The trace attributes that fit under SQS's attribute count and ``max_bytes``."""
    if "traceparent" not in carrier:
        return {}  # no recording span and no incoming context: nothing to carry
    added: dict[str, Mapping[str, Any]] = {}
    count = len(outgoing.attributes)
    size = outgoing.size
    for key in ("traceparent", "tracestate"):
        value = carrier.get(key)
        if not value or key in outgoing.attributes:
            continue
        extra = len(key.encode()) + len(b"String") + len(value.encode())
        if count >= MAX_MESSAGE_ATTRIBUTES or size + extra > max_bytes:
            logger.debug(
                "%s not sent: the message has %d attributes and %d bytes (limits %d, %d)",
                key,
                count,
                size,
                MAX_MESSAGE_ATTRIBUTES,
                max_bytes,
            )
            break
        added[key] = {"DataType": "String", "StringValue": value}
        count += 1
        size += extra
    return added
