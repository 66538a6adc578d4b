"""A Powertools ``BatchProcessor`` that runs SQS records concurrently with per-message backoff.

For functions written with Powertools' batch utility: swap the processor, keep the record
handler and ``process_partial_response``::

    from aws_lambda_powertools.utilities.batch import process_partial_response
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from sqsx_lambda.powertools import SqsxBatchProcessor

    processor = SqsxBatchProcessor(max_threads=8, min_backoff_seconds=10)

    def record_handler(record: SQSRecord) -> None:
        ...  # raise sqsx.Retry(...) / sqsx.NoRetry() / anything, as with sqsx handlers

    def lambda_handler(event, context):
        return process_partial_response(event, record_handler, processor, context)

Records run on ``LambdaHandler``'s thread pool through sqsx's core, wrapped as a
``RawQueue`` whose handler calls ``record_handler`` with the Powertools record (an
``SQSRecord``, or the ``model`` given). A record that fails is reported and hidden for its
backoff, as in the polling worker. Importing this module imports Powertools' batch utility
(tens of milliseconds); ``import sqsx_lambda`` does not.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import BatchTypeModels
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from sqsx.exceptions import ConfigurationError, SqsxError
from sqsx.lanes import DEFAULT_MAX_COROUTINES, is_async_function
from sqsx.queue import RawQueue
from sqsx.routes import RawDispatcher
from sqsx_lambda.handler import DEFAULT_DEADLINE_MARGIN_MS, LambdaHandler
from sqsx_lambda.records import queue_url_from_arn, records_of
from sqsx_lambda.runner import RecordResult

__all__ = ["RecordFailedError", "SqsxBatchProcessor"]


class RecordFailedError(SqsxError):
    """What Powertools records for a record sqsx reported (the reason, never the body).

    Attributes:
        result: the record's ``RecordResult`` (fate, ``Outcome`` with its backoff).
    """

    def __init__(self, result: RecordResult) -> None:
        seconds = result.visibility_timeout
        then = "visibility unchanged" if seconds is None else f"visible again in {seconds}s"
        super().__init__(f"{result.message.message_id}: {result.reason or 'failed'} ({then})")
        self.result = result


class SqsxBatchProcessor(BatchProcessor):
    """Powertools' SQS ``BatchProcessor``, with sqsx's fan-out and per-message backoff.

    Args:
        sqs_client: boto3 SQS client for the visibility changes (default: ``boto3.client
            ("sqs", config=sqsx.timeouts.client_config())``, created on the first batch).
        queue_url: the queue's URL (default: derived from the records' ``eventSourceARN``;
            give it for a local server or a VPC endpoint).
        max_threads: records processed at once (default: ``default_max_threads()``; 1 runs
            them inline).
        max_async: records whose ``async def`` record handler runs at once, holding no
            thread (default 100; see ``LambdaHandler``).
        min_backoff_seconds: first retry delay in seconds (default 30).
        max_backoff_seconds: largest retry delay in seconds (default 900, at most 43200).
        deadline_margin_ms: see ``LambdaHandler`` (default 1000 ms).
        model: a Powertools parser model (``SqsRecordModel`` subclass) to hand the record
            handler instead of an ``SQSRecord``.
        raise_on_entire_batch_failure: raise ``BatchProcessingError`` when every record
            failed (default False: report them all, so the backoffs set stand).
        logger: passed to ``BatchProcessor`` (Powertools 3.30 and later).
    """

    def __init__(
        self,
        *,
        sqs_client: Any = None,
        queue_url: str | None = None,
        max_threads: int | None = None,
        max_async: int = DEFAULT_MAX_COROUTINES,
        min_backoff_seconds: int = 30,
        max_backoff_seconds: int = 900,
        deadline_margin_ms: int = DEFAULT_DEADLINE_MARGIN_MS,
        model: BatchTypeModels | None = None,
        raise_on_entire_batch_failure: bool = False,
        logger: logging.Logger | None = None,
    ) -> None:
        # ``logger`` reached BatchProcessor in Powertools 3.30; older 3.x releases get it
        # only when it is given, so that they keep working without it.
        options: dict[str, Any] = {} if logger is None else {"logger": logger}
        try:
            super().__init__(
                EventType.SQS,
                model=model,
                raise_on_entire_batch_failure=raise_on_entire_batch_failure,
                **options,
            )
        except TypeError as err:
            raise ConfigurationError(
                f"this Powertools release does not accept logger= ({err}); "
                "it needs aws-lambda-powertools>=3.30"
            ) from err
        self._model = model
        self._client = sqs_client
        self._queue_url = queue_url
        self._max_threads = max_threads
        self._max_async = max_async
        self._backoff = (min_backoff_seconds, max_backoff_seconds)
        self._margin_ms = deadline_margin_ms
        self._lambda: LambdaHandler | None = None
        self._setup_lock = threading.Lock()
        self._context: Any = None
        self._record_handler: Callable[..., Any] = _no_handler
        self._pass_context = False
        self._batch: dict[str, dict[str, Any]] = {}
        self._returned: dict[str, Any] = {}

    def __call__(
        self,
        records: list[dict[str, Any]],
        handler: Callable[..., Any],
        lambda_context: Any = None,
    ) -> SqsxBatchProcessor:
        """Set the batch, the record handler and the Lambda context (Powertools' protocol)."""
        super().__call__(records, handler, lambda_context)
        # Kept here rather than read back from Powertools' private attributes, so that any
        # 3.x release works; Powertools keeps a stale context when given None, this does not.
        self._context = lambda_context
        self._record_handler = handler
        self._pass_context = lambda_context is not None and _takes_lambda_context(handler)
        return self

    def process(self) -> list[tuple[Any, ...]]:
        """Run the batch concurrently; one Powertools success or failure entry per record."""
        records = records_of({"Records": self.records})
        handler = self._lambda_handler(records[0] if records else {})
        dispatcher = handler.queue.dispatcher
        if isinstance(dispatcher, RawDispatcher):  # an async record handler takes the lane
            is_async = is_async_function(self._record_handler)
            dispatcher.handler = (
                self._run_async_record_handler if is_async else self._run_record_handler
            )
        self._batch = {str(record["messageId"]): dict(record) for record in records}
        self._returned = {}
        results = handler.process_records(records, self._context)
        entries: list[tuple[Any, ...]] = []
        for record, result in zip(records, results, strict=True):
            if result.reported:
                error = RecordFailedError(result)
                entries.append(
                    self.failure_handler(SQSRecord(dict(record)), (type(error), error, None))
                )
            else:
                returned = self._returned.get(result.message.message_id)
                entries.append(self.success_handler(record, returned))
        return entries

    def close(self) -> None:
        """Stop the thread pool (for tests and local tools)."""
        if self._lambda is not None:
            self._lambda.close()

    def _lambda_handler(self, first: Any) -> LambdaHandler:
        with self._setup_lock:
            if self._lambda is None:
                url = self._queue_url or queue_url_from_arn(first.get("eventSourceARN"))
                client = self._client
                if client is None:
                    import boto3

                    from sqsx.timeouts import client_config

                    client = boto3.client("sqs", config=client_config())
                low, high = self._backoff
                queue = RawQueue(
                    url=url,
                    message_handler_function=self._run_record_handler,
                    sqs_client=client,
                    min_backoff_seconds=low,
                    max_backoff_seconds=high,
                )
                self._lambda = LambdaHandler(
                    queue,
                    max_threads=self._max_threads,
                    deadline_margin_ms=self._margin_ms,
                    max_async=self._max_async,
                )
            return self._lambda

    def _run_record_handler(self, queue_url: str, sqs_message: Mapping[str, Any]) -> None:
        message_id, returned = self._call_record_handler(sqs_message)
        if returned is not None and inspect.isawaitable(returned):  # run it here
            returned = self._lambda_handler({}).queue.dispatcher.event_loop.run(returned)
        self._returned[message_id] = returned

    async def _run_async_record_handler(
        self, queue_url: str, sqs_message: Mapping[str, Any]
    ) -> None:
        """For an ``async def`` record handler: a coroutine on the async lane."""
        message_id, returned = self._call_record_handler(sqs_message)
        self._returned[message_id] = await returned

    def _call_record_handler(self, sqs_message: Mapping[str, Any]) -> tuple[str, Any]:
        message_id = str(sqs_message["MessageId"])
        record = self._batch[message_id]
        data = SQSRecord(record) if self._model is None else self._model.model_validate(record)
        if self._pass_context:
            return message_id, self._record_handler(record=data, lambda_context=self._context)
        return message_id, self._record_handler(record=data)


def _no_handler(**_: Any) -> None:
    raise SqsxError("SqsxBatchProcessor was not called with a record handler")


def _takes_lambda_context(handler: Callable[..., Any]) -> bool:
    try:
        return "lambda_context" in inspect.signature(handler).parameters
    except (TypeError, ValueError):
        return False
