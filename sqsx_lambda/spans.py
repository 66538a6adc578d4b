"""``LambdaHandler(tracing=True)``'s invocation span (``sqsx.tracing``, imported only then).

One ``process <queue>`` span per invocation, linked to each record's producer context, and
current in the invoking thread: the inline pass runs there, and every other thread that
runs a record runs it in a copy of that thread's context (``Batch.context``), coroutines
too (``CoroutineRun.context``), so handlers' spans are its children. Records do not go
through the ``Tracing`` hook; their failures are put on the span once they are all done.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from sqsx.dispatch import Outcome
from sqsx.exceptions import ConfigurationError
from sqsx.hooks import Hook
from sqsx.message import Message
from sqsx_lambda.inline import InlineRun
from sqsx_lambda.runner import RecordResult

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from sqsx.tracing import Tracing

__all__ = ["invocation_span", "trace_failures", "tracing_hook"]


def tracing_hook(hooks: Sequence[Hook]) -> Tracing:
    """The queue's ``Tracing`` hook, or a new one.

    Raises:
        ConfigurationError: opentelemetry-api is not installed.
    """
    try:
        from sqsx.tracing import Tracing
    except ImportError as err:
        raise ConfigurationError(
            "tracing=True needs opentelemetry-api: pip install 'sqsx[tracing]'"
        ) from err

    return next((hook for hook in hooks if isinstance(hook, Tracing)), None) or Tracing()


def invocation_span(
    tracing: Tracing | None, queue_url: str, records: Sequence[Mapping[str, Any]]
) -> AbstractContextManager[Span | None]:
    """The invocation's span over ``records``, or nothing without ``tracing``."""
    if tracing is None:
        return nullcontext()
    span: AbstractContextManager[Span | None] = tracing.lambda_span(
        records, queue_url.rstrip("/").rsplit("/", 1)[-1]
    )
    return span


def trace_failures(tracing: Tracing, span: Span, ran: InlineRun | list[RecordResult]) -> None:
    """Put on ``span`` what went wrong with the records of ``ran``."""
    pairs: Iterable[tuple[Message, Outcome]] = (
        ran.judged()  # a success has nothing to put on the span
        if isinstance(ran, InlineRun)
        else ((r.message, r.outcome) for r in ran if r.outcome is not None)
    )
    for message, outcome in pairs:
        tracing.record_failure(span, message, outcome)
