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
- Lambda: ``LambdaHandler(queue, tracing=True)`` adds one invocation span per batch with a
  link to each record's producer context, as the conventions advise for batches.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sqsx.codec import DEFAULT_MAX_MESSAGE_BYTES
from sqsx.dispatch import Outcome, Verdict
from sqsx.hooks import Hook, Processing
from sqsx.message import Message
from sqsx.sending import OutgoingMessage

__all__ = ["MAX_MESSAGE_ATTRIBUTES", "Tracing", "producer_context"]

logger = logging.getLogger(__name__)

#: SQS accepts at most ten message attributes per message.
#: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html
MAX_MESSAGE_ATTRIBUTES = 10
_SYSTEM = "aws_sqs"
_PROPAGATOR = TraceContextTextMapPropagator()
# Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>  (X-Ray's trace header)
_XRAY = re.compile(
    r"Root=1-(?P<time>[0-9a-f]{8})-(?P<rest>[0-9a-f]{24});Parent=(?P<parent>[0-9a-f]{16})"
    r"(?:;Sampled=(?P<sampled>[01]))?",
    re.IGNORECASE,
)


class Tracing(Hook):
    """Producer and consumer spans for every message sent and processed (see module docs).

    Args:
        tracer_provider: the provider to take the tracer from; default the global one.
        max_message_bytes: the queue's size limit; trace attributes that would take a
            message over it are left out (default 1 MiB, as ``Queue``'s).
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        from sqsx import __version__

        self._tracer = trace.get_tracer("sqsx", __version__, tracer_provider=tracer_provider)
        self._max_bytes = max_message_bytes
        self._names: dict[str, str] = {}

    def _name(self, queue_url: str) -> str:
        name = self._names[queue_url] = queue_url.rstrip("/").rsplit("/", 1)[-1]
        return name

    @property
    def tracer(self) -> trace.Tracer:
        """The tracer sqsx's spans come from."""
        return self._tracer

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
        parent = producer_context(message)
        name = self._names.get(processing.queue_url) or self._name(processing.queue_url)
        span = self._tracer.start_span(
            f"process {name}",
            context=trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent else None,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": _SYSTEM,
                "messaging.destination.name": name,
                "messaging.message.id": message.message_id,
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "aws.sqs.queue.url": processing.queue_url,
                "sqsx.receive_count": message.receive_count,
                "sqsx.task": processing.task,
                "sqsx.runtime": processing.runtime,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        processing.state[self] = (span, token)

    def after_process(self, processing: Processing, outcome: Outcome) -> None:
        found = processing.state.pop(self, None)
        if found is None:
            return
        span, token = found
        try:
            if not span.is_recording():
                return
            span.set_attribute("sqsx.verdict", outcome.verdict.value)
            if outcome.retry_after is not None:
                span.set_attribute("sqsx.retry_after_seconds", outcome.retry_after)
            error = outcome.error
            if error is not None:  # Retry / NoRetry never get here: they are not errors
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            elif outcome.verdict is Verdict.UNPROCESSABLE:
                span.set_status(Status(StatusCode.ERROR, "unprocessable message"))
        finally:
            span.end()
            otel_context.detach(token)

    # -- Lambda ----------------------------------------------------------------------------

    def invocation_span(self, messages: Sequence[Message], name: str) -> Any:
        """A CONSUMER span over one Lambda invocation, linked to each record's producer
        context (a context manager; the span is current inside it)."""
        links = [Link(ctx) for ctx in (producer_context(m) for m in messages) if ctx]
        return self._tracer.start_as_current_span(
            f"process {name}",
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": _SYSTEM,
                "messaging.destination.name": name,
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.batch.message_count": len(messages),
            },
        )


def producer_context(message: Message) -> SpanContext | None:
    """The producer's span context carried by ``message``: its ``traceparent`` message
    attribute, else its ``AWSTraceHeader`` system attribute; ``None`` if neither is valid."""
    raw = message.raw
    carrier: dict[str, str] = {}
    for key, value in (raw.get("MessageAttributes") or {}).items():
        if key in ("traceparent", "tracestate") and isinstance(value, Mapping):
            text = value.get("StringValue")
            if isinstance(text, str):
                carrier[key] = text
    if "traceparent" in carrier:
        span = trace.get_current_span(_PROPAGATOR.extract(carrier))
        found = span.get_span_context()
        if found.is_valid:
            return found
    header = (raw.get("Attributes") or {}).get("AWSTraceHeader")
    return _from_xray(header) if isinstance(header, str) else None


def _from_xray(header: str) -> SpanContext | None:
    match = _XRAY.search(header)
    if match is None:
        return None
    trace_id = int(match["time"] + match["rest"], 16)
    span_id = int(match["parent"], 16)
    if not trace_id or not span_id:
        return None
    flags = TraceFlags(TraceFlags.SAMPLED if match["sampled"] == "1" else TraceFlags.DEFAULT)
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)


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
