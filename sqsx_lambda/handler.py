"""``LambdaHandler``: the Lambda entrypoint for the handlers registered on a queue.

Each record goes through the same core as in the polling worker (``queue.process``), on a
reused thread pool. Its ``Outcome`` becomes the answer Lambda understands:

- delete (success, ``NoRetry``, or an unprocessable message under ``poison_policy="delete"``):
  not reported, so Lambda deletes it;
- retry after N seconds: reported in ``batchItemFailures``, and its visibility timeout set
  to N with ChangeMessageVisibilityBatch, so it comes back after its own backoff rather
  than after the queue's whole visibility timeout;
- skipped (deadline near, or an earlier record of its FIFO group failed): reported, and
  visible again at once (visibility 0);
- abandoned (still running at the deadline): reported, visibility left alone.

If every record fails, every one is reported: the handler does not raise, so the backoffs
it set stand (an exception would make Lambda retry the whole batch).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from sqsx.abandon import AbandonFn
from sqsx.dispatch import Dispatcher, Outcome
from sqsx.exceptions import ConfigurationError
from sqsx.hooks import Hook, HookChain
from sqsx.lanes import DEFAULT_MAX_COROUTINES, AsyncLane, CoroutineRun
from sqsx.message import Message
from sqsx_lambda.batch import log_counts, log_summary
from sqsx_lambda.inline import InlinePass, InlineRun
from sqsx_lambda.queues import QueueUrls
from sqsx_lambda.records import RecordError, read_record, records_of
from sqsx_lambda.runner import BatchRunner, Job, RecordResult
from sqsx_lambda.spans import invocation_span, trace_failures, tracing_hook
from sqsx_lambda.visibility import change_visibility

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

    from sqsx.queue import BaseQueue
    from sqsx.tracing import Tracing
    from sqsx_lambda.metrics import InvocationMetrics

__all__ = [
    "DEFAULT_DEADLINE_MARGIN_MS",
    "BatchItemFailure",
    "BatchResponse",
    "LambdaHandler",
    "default_max_threads",
]

logger = logging.getLogger(__name__)

#: Default for ``deadline_margin_ms``.
DEFAULT_DEADLINE_MARGIN_MS = 1_000
_MAX_THREADS_LIMIT = 1024


class BatchItemFailure(TypedDict):
    """One reported record: Lambda keeps it on the queue."""

    itemIdentifier: str


class BatchResponse(TypedDict):
    """What a function with ``ReportBatchItemFailures`` returns."""

    batchItemFailures: list[BatchItemFailure]


def default_max_threads() -> int:
    """Threads for I/O-bound handlers: ``min(32, cpu_count + 4)`` (Python's own default),
    and at least 10, the default batch size of an SQS event source mapping, so that a
    batch of slow records runs side by side. Threads start only when records need them.

    Lambda gives a function 1 vCPU per 1,769 MB of memory (up to 6).
    """
    return min(32, max(10, (os.cpu_count() or 1) + 4))


class LambdaHandler:
    """Runs an SQS event's records through the handlers registered on ``queue``.

    Use an instance as the function's handler: ``handler(event, context)`` returns
    ``{"batchItemFailures": [...]}`` (enable ``ReportBatchItemFailures`` on the event source
    mapping). Create it once, at module level: its thread pool serves every warm invocation.

    Args:
        queue: a ``Queue`` (task handlers) or ``RawQueue`` (one message handler). Its SQS
            client sends the visibility changes; its backoff settings and ``poison_policy``
            apply as in the polling worker.
        max_threads: records processed at once (1 to 1024; default ``default_max_threads()``).
            1 runs them inline, one after another, in the invoking thread.
        queue_url: URL for the visibility changes of every record. Default: the queue's own
            ``url`` for records of that queue (same account and name; so a local server or a
            VPC endpoint works), else the public URL derived from the record's
            ``eventSourceARN``.
        deadline_margin_ms: milliseconds of the invocation kept free (default 1000). With
            less than this left no record starts (the rest are reported and made visible at
            once); with threads, records still running with half of it left are reported
            as failures (inline, with ``max_threads=1``, a running record cannot be left
            behind: keep such handlers well under the function timeout).
            Keep it well below the function timeout.
        max_async: coroutines of ``async def`` handlers running at once (1 to 10,000,
            default 100), on the queue's event loop (reused by warm invocations), holding
            no thread: ``max_threads`` bounds only the records running sync code. At the
            deadline guard the coroutines still running are cancelled.
        logger: an ``aws_lambda_powertools.Logger``. When given, sqsx's log lines go through
            its handler as structured JSON carrying the Lambda context (request id, function)
            and, per record, ``message_id`` (and ``message_group_id`` on FIFO queues).
        metrics: an ``aws_lambda_powertools.Metrics``. When given, every invocation records
            its records' fates and handler durations as CloudWatch EMF metrics and flushes
            them once (see ``sqsx_lambda.metrics``).
        tracing: ``True`` to trace with OpenTelemetry (``sqsx[tracing]``): one invocation
            span per batch, linked to each record's producer, and a ``process`` span per
            record continuing its producer's trace (see ``sqsx.tracing``). The queue's own
            ``sqsx.tracing.Tracing`` hook is used if it has one.

    Attributes:
        max_threads: the resolved thread count.
        deadline_margin_ms: the margin in milliseconds.

    Raises:
        ConfigurationError: ``max_threads`` or ``deadline_margin_ms`` is out of bounds, or
            ``tracing=True`` without opentelemetry-api installed (a ``ValueError``).
    """

    def __init__(
        self,
        queue: BaseQueue,
        *,
        max_threads: int | None = None,
        queue_url: str | None = None,
        deadline_margin_ms: int = DEFAULT_DEADLINE_MARGIN_MS,
        logger: Logger | None = None,
        metrics: Metrics | None = None,
        tracing: bool = False,
        max_async: int = DEFAULT_MAX_COROUTINES,
    ) -> None:
        threads = default_max_threads() if max_threads is None else max_threads
        if not 1 <= threads <= _MAX_THREADS_LIMIT:
            raise ConfigurationError(
                f"max_threads must be between 1 and {_MAX_THREADS_LIMIT}, got {threads}"
            )
        if deadline_margin_ms < 0:
            raise ConfigurationError(
                f"deadline_margin_ms must be 0 or more, got {deadline_margin_ms}"
            )
        self._queue = queue
        self._own_url = queue.url
        self._urls = QueueUrls(queue.url, queue_url)
        self._client = queue.sqs_client
        self._dispatcher: Dispatcher = queue.dispatcher
        self._hooks: tuple[Hook, ...] = ()
        self._with_context = self._respond
        if logger is not None:
            from sqsx_lambda.logs import StructuredLogs

            structured = StructuredLogs(logger)
            self._hooks = (structured.record_hook(),)
            self._with_context = structured.invocation(self._respond)
        self._tracing: Tracing | None = None
        if tracing:
            self._tracing = tracing_hook(queue.hooks)
            if self._tracing not in queue.hooks:
                self._hooks += (self._tracing,)
        self._metrics: InvocationMetrics | None = None
        if metrics is not None:
            from sqsx_lambda.metrics import InvocationMetrics

            self._metrics = InvocationMetrics(metrics)
        self._chained = self._dispatcher.hooks  # the queue's chain that ``_chain`` extends
        self._chain = self._record_chain()
        dispatcher = self._dispatcher
        self._lane = AsyncLane(
            dispatcher.event_loop,
            max_coroutines=max_async,
            grace_seconds=dispatcher.time_limits.grace_seconds,
        )
        self._runner = BatchRunner(
            self._process,
            max_threads=threads,
            deadline_margin_ms=deadline_margin_ms,
            caps=lambda: dispatcher.task_caps,
            lane=self._lane,
        )
        self._inline_pass = InlinePass(self._runner, self._job, self._refuse, deadline_margin_ms)
        self.max_threads = threads
        self.deadline_margin_ms = deadline_margin_ms

    @property
    def queue(self) -> BaseQueue:
        """The queue whose handlers run."""
        return self._queue

    def __call__(self, event: Mapping[str, Any], context: Any = None) -> BatchResponse:
        """Process an SQS event; the Lambda entrypoint.

        Args:
            event: the SQS event (``{"Records": [...]}``).
            context: the Lambda context: passed to task handlers as
                ``context["lambda_context"]`` and read for the deadline guard.

        Returns:
            ``{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}``.

        Raises:
            EventError: the event is not an SQS event (see ``records_of``).
        """
        if context is None:  # a direct call (tests, scripts): no Lambda context keys to log
            return self._respond(event, context)
        return self._with_context(event, context)

    def _respond(self, event: Mapping[str, Any], context: Any) -> BatchResponse:
        ran = self._run(records_of(event), context)
        return {"batchItemFailures": []} if isinstance(ran, InlineRun) else _response(ran)

    def process_records(
        self, records: Sequence[Mapping[str, Any]], context: Any = None
    ) -> list[RecordResult]:
        """Run ``records`` (already checked by ``records_of``), apply their visibility
        changes, and return one ``RecordResult`` per record, in order."""
        ran = self._run(records, context)
        return ran.results() if isinstance(ran, InlineRun) else ran

    def _run(
        self, records: Sequence[Mapping[str, Any]], context: Any
    ) -> InlineRun | list[RecordResult]:
        if not records:
            return []
        if self._dispatcher.hooks is not self._chained:  # hooks added since (a new chain)
            self._chained = self._dispatcher.hooks
            self._chain = self._record_chain()
        urls = self._urls.urls_for(records)
        fifo = self._urls.fifo(urls)
        with invocation_span(self._tracing, self._own_url, records) as span:
            ran = self._inline(records, context, fifo)
            if ran is None:
                jobs = [self._job(index, record) for index, record in enumerate(records)]
                ran = self._runner.run(jobs, context, ordered_groups=fifo)
            if span is not None and self._tracing is not None:
                trace_failures(self._tracing, span, ran)
        if isinstance(ran, InlineRun):  # every record deleted: nothing to change or report
            log_counts(len(records), 0, urls[0])
            if self._metrics is not None:
                self._metrics.record_deleted(ran.outcomes, urls[0])
            return ran
        results = ran
        change_visibility(self._client, results, urls, context, self.deadline_margin_ms)
        log_summary(results, urls[0])
        if self._metrics is not None:
            self._metrics.record(results, urls[0])
        if self._chain.watches_deletes:
            for result, url in zip(results, urls, strict=True):
                if not result.reported:  # Lambda deletes it once the response is returned
                    self._chain.deleted([result.message], url)
        return results

    def close(self) -> None:
        """Stop the thread pool (for tests and local tools; Lambda never needs it)."""
        self._runner.close()

    def _record_chain(self) -> HookChain:
        """The hooks each record runs through: the queue's and this handler's, but not the
        ``Tracing`` hook whose invocation span accounts for every record (see
        ``sqsx_lambda.spans``)."""
        hooks = (*self._chained.hooks, *self._hooks)
        if self._tracing is not None and not self._tracing.lambda_record_spans:
            hooks = tuple(hook for hook in hooks if hook is not self._tracing)
        return HookChain(hooks)

    def _process(
        self,
        message: Message,
        lambda_context: Any,
        on_abandon: AbandonFn,
        limit_cap: Callable[[], float | None],
    ) -> Outcome | CoroutineRun:
        return self._dispatcher.begin(
            message,
            lambda_context,
            runtime="lambda",
            hooks=self._chain,
            on_abandon=on_abandon,
            limit_cap=limit_cap,
            lane=self._lane,
        )

    def _inline(
        self, records: Sequence[Mapping[str, Any]], context: Any, fifo: bool
    ) -> InlineRun | list[RecordResult] | None:
        """The records run by the inline pass (``sqsx_lambda.inline``), or ``None`` when it
        does not apply (then the runner takes them all)."""
        if self._chain.watches_deletes:
            return None
        until = self._runner.inline_until(len(records), ordered_groups=fifo)
        lane = None if until is None else self._dispatcher.plain_lane(self._chain)
        if until is None or lane is None:
            return None
        return self._inline_pass.run(lane, records, context, until, ordered_groups=fifo)

    def _refuse(self, err: RecordError) -> Outcome:
        return self._dispatcher.refuse(err.envelope, err, runtime="lambda", hooks=self._chain)

    def _job(self, index: int, record: Mapping[str, Any]) -> Job:
        try:
            return Job(index, read_record(record))
        except RecordError as err:
            return Job(index, err.envelope, self._refuse(err))


def _response(results: Sequence[RecordResult]) -> BatchResponse:
    """The ``batchItemFailures`` answer for ``results``: every reported record, in order."""
    return {
        "batchItemFailures": [
            {"itemIdentifier": result.message.message_id} for result in results if result.reported
        ]
    }
