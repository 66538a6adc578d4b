"""The producer's trace context a received message carries: its W3C ``traceparent`` (and
``tracestate``) message attributes, else the ``AWSTraceHeader`` system attribute X-Ray and
Lambda set. Read without OpenTelemetry's propagator, which builds a context per message
(about three times the cost), and judged as it judges them (``tests/test_tracing.py``
compares both)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanContext, TraceFlags

from sqsx.message import Message

__all__ = ["producer_context", "record_context"]

# Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>  (X-Ray's trace header)
_XRAY = re.compile(
    r"Root=1-(?P<time>[0-9a-f]{8})-(?P<rest>[0-9a-f]{24});Parent=(?P<parent>[0-9a-f]{16})"
    r"(?:;Sampled=(?P<sampled>[01]))?",
    re.IGNORECASE,
)
# W3C Trace Context: version-traceid-parentid-flags, lowercase hex; a later version may
# append fields (https://www.w3.org/TR/trace-context/#traceparent-header-field-values);
# the pattern and the 512-character limits are OpenTelemetry's propagator's
_TRACEPARENT = re.compile(
    r"[ \t]*(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?:(?P<rest>-.*)|[ \t]*)"
)
# the common case, version 00 and nothing around it: read by position, not by group
_CANONICAL = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_MAX_HEADER = 512
_FLAGS = {"00": TraceFlags(TraceFlags.DEFAULT), "01": TraceFlags(TraceFlags.SAMPLED)}


def producer_context(message: Message) -> SpanContext | None:
    """The producer's span context carried by ``message``: its ``traceparent`` message
    attribute, else its ``AWSTraceHeader`` system attribute; ``None`` if neither is valid."""
    raw = message.raw
    return _carried(raw.get("MessageAttributes"), raw.get("Attributes"), "StringValue")


def record_context(record: Mapping[str, Any]) -> SpanContext | None:
    """``producer_context`` of a Lambda SQS event record (its own shape: lower-case
    ``messageAttributes`` / ``stringValue``, ``attributes``), read without converting it."""
    return _carried(record.get("messageAttributes"), record.get("attributes"), "stringValue")


def _carried(attributes: Any, system: Any, field: str) -> SpanContext | None:
    if attributes and isinstance(attributes, Mapping):
        found = _from_traceparent(_text(attributes, "traceparent", field), attributes, field)
        if found is not None:
            return found
    header = system.get("AWSTraceHeader") if isinstance(system, Mapping) else None
    return _from_xray(header) if isinstance(header, str) else None


def _text(attributes: Mapping[str, Any], key: str, field: str) -> str | None:
    value = attributes.get(key)
    if value is None or not (type(value) is dict or isinstance(value, Mapping)):  # dict: fast
        return None
    text = value.get(field)
    return text if type(text) is str else None


def _from_traceparent(
    header: str | None, attributes: Mapping[str, Any], field: str
) -> SpanContext | None:
    """The W3C ``traceparent`` (and ``tracestate``) as a remote span context; ``None`` if
    invalid, as OpenTelemetry's own propagator judges it (read here without building a
    context per message: a third of the propagator's cost)."""
    if not header:
        return None
    if len(header) == 55 and _CANONICAL.fullmatch(header):
        trace_id, span_id, flag_text = int(header[3:35], 16), int(header[36:52], 16), header[53:]
    else:
        match = _TRACEPARENT.fullmatch(header) if len(header) <= _MAX_HEADER else None
        if (
            match is None
            or match["version"] == "ff"
            or (match["version"] == "00" and match["rest"])
        ):
            return None
        trace_id, span_id, flag_text = (
            int(match["trace"], 16),
            int(match["span"], 16),
            match["flags"],
        )
    if not trace_id or not span_id:
        return None
    state = _text(attributes, "tracestate", field)
    if state is not None and len(state) > _MAX_HEADER:
        state = None
    flags = _FLAGS.get(flag_text)
    if flags is None:
        flags = TraceFlags(int(flag_text, 16))
    return SpanContext(
        trace_id,
        span_id,
        is_remote=True,
        trace_flags=flags,
        trace_state=trace.TraceState.from_header([state]) if state else None,
    )


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
