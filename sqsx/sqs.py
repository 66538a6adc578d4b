"""The slice of the SQS API sqsx uses: batched calls and entry failures, one retry rule and
one 12-hour cap (error classes: ``sqsx.sqs_errors``, re-exported here)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqsx.backoff import MAX_VISIBILITY_TIMEOUT_SECONDS
from sqsx.clip import clip
from sqsx.sqs_errors import (
    describe_error,
    error_code,
    is_bad_credentials,
    is_missing_queue,
    is_permanent,
    is_sqs_error,
    is_transient,
)

__all__ = [
    "BatchEntry",
    "EntryFailure",
    "QueueDepth",
    "SqsClient",
    "capped_visibility",
    "change_visibility_batch",
    "change_visibility_now",
    "delete_batch",
    "describe_error",
    "error_code",
    "is_bad_credentials",
    "is_missing_queue",
    "is_permanent",
    "is_sqs_error",
    "is_transient",
    "read_depth",
    "retry_delay",
]

#: SQS's limit on entries in one batch request.
MAX_BATCH_ENTRIES = 10


class SqsClient(Protocol):
    """The boto3 SQS client methods sqsx calls (a boto3 ``sqs`` client satisfies it)."""

    def send_message(self, **kwargs: Any) -> Any: ...
    def send_message_batch(self, **kwargs: Any) -> Any: ...
    def receive_message(self, **kwargs: Any) -> Any: ...
    def delete_message_batch(self, **kwargs: Any) -> Any: ...
    def change_message_visibility_batch(self, **kwargs: Any) -> Any: ...
    def get_queue_attributes(self, **kwargs: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """One message in a delete or change-visibility batch.

    ``visibility_timeout`` (seconds) is used only by change-visibility batches; ``lease``
    marks a heartbeat extension, which is dropped once its message is no longer held.
    """

    message_id: str
    receipt_handle: str
    visibility_timeout: int = 0
    lease: bool = False


@dataclass(frozen=True, slots=True)
class EntryFailure:
    """An entry SQS refused inside a batch response, or that a failed call carried."""

    entry: BatchEntry
    code: str
    detail: str
    sender_fault: bool

    @property
    def stale_handle(self) -> bool:
        """True when SQS no longer knows the receipt handle (deleted, expired, redelivered):
        no retry can succeed."""
        return self.code in _STALE_HANDLE_CODES or (
            self.code == "InvalidParameterValue" and "ReceiptHandle" in self.detail
        )

    @property
    def retryable(self) -> bool:
        """True when the same entry may succeed later (a refusal on SQS's side)."""
        return not self.sender_fault and not self.stale_handle


# Entry codes for a receipt handle SQS no longer honours.
_STALE_HANDLE_CODES = frozenset({"ReceiptHandleIsInvalid", "MessageNotInflight"})

#: A failed call or refused entry is tried again after 0.2 s, 0.4 s, 0.8 s, ... (at most 5 s).
RETRY_BASE_SECONDS = 0.2
RETRY_CAP_SECONDS = 5.0


def retry_delay(failures: int) -> float:
    """Seconds to wait before the next try after ``failures`` failed tries (1 or more)."""
    exponent = min(max(failures, 1) - 1, 8)
    return min(RETRY_BASE_SECONDS * float(2**exponent), RETRY_CAP_SECONDS)


def capped_visibility(seconds: int, held_seconds: float = 0.0) -> int:
    """``seconds`` cut to what SQS accepts for a message received ``held_seconds`` ago:
    a visibility timeout may not reach past 12 hours (43,200 s) from the receive."""
    left = MAX_VISIBILITY_TIMEOUT_SECONDS - math.ceil(max(held_seconds, 0.0))
    return max(min(int(seconds), left), 0)


def delete_batch(
    client: SqsClient, queue_url: str, entries: Sequence[BatchEntry]
) -> list[EntryFailure]:
    """Delete ``entries`` with DeleteMessageBatch, ten per call.

    Returns the entries SQS refused. A call that fails as a whole raises (``ClientError``,
    ``BotoCoreError``) before later chunks are sent; the caller keeps what it passed in.
    """
    failures: list[EntryFailure] = []
    for chunk in _chunks(entries):
        response = client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": e.receipt_handle} for i, e in enumerate(chunk)
            ],
        )
        failures.extend(_failures(chunk, response))
    return failures


def change_visibility_batch(
    client: SqsClient, queue_url: str, entries: Sequence[BatchEntry]
) -> list[EntryFailure]:
    """Set each entry's visibility timeout with ChangeMessageVisibilityBatch, ten per call.

    Timeouts are cut to SQS's 0 to 43,200 s (``capped_visibility``). Returns the entries
    SQS refused; raises like ``delete_batch`` when a call fails whole.
    """
    failures: list[EntryFailure] = []
    for chunk in _chunks(entries):
        response = client.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {
                    "Id": str(i),
                    "ReceiptHandle": e.receipt_handle,
                    "VisibilityTimeout": capped_visibility(e.visibility_timeout),
                }
                for i, e in enumerate(chunk)
            ],
        )
        failures.extend(_failures(chunk, response))
    return failures


def change_visibility_now(
    client: SqsClient,
    queue_url: str,
    entries: Sequence[BatchEntry],
    *,
    attempts: int = 4,
    deadline: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[EntryFailure]:
    """``change_visibility_batch`` made synchronously, with bounded retries (for a caller
    that must answer before a deadline, as the Lambda runtime does).

    Every entry's first attempt is made before any retry (ten to a call); then a call that
    failed with throttling, a 5xx or a network error, and entries refused on SQS's side,
    are tried again after ``retry_delay``, up to ``attempts`` tries in all and only while
    the next try can start before ``deadline`` (``time.monotonic()``; ``None``: none).

    Returns what was not done, one ``EntryFailure`` per entry: SQS's code for a refused
    entry, the error code for a call that failed for good. Never raises for an SQS error.
    """
    failed: list[EntryFailure] = []
    todo: Sequence[BatchEntry] = entries
    for attempt in range(1, attempts + 1):
        retry: list[EntryFailure] = []
        for chunk in _chunks(todo):
            try:
                refused = change_visibility_batch(client, queue_url, chunk)
            except Exception as err:
                if not is_sqs_error(err):
                    raise
                detail = clip(str(err), 200)
                refused = [
                    EntryFailure(e, error_code(err), detail, not is_transient(err)) for e in chunk
                ]
            retry += [f for f in refused if f.retryable]
            failed += [f for f in refused if not f.retryable]
        delay = retry_delay(attempt)
        out_of_time = deadline is not None and time.monotonic() + delay >= deadline
        if not retry or attempt == attempts or out_of_time:
            return failed + retry
        sleep(delay)
        todo = [f.entry for f in retry]
    return failed


# Entry codes that name a bad request (the SQS API reference lists them as errors of the
# request: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html,
# .../API_ChangeMessageVisibility.html, .../CommonErrors.html): sending the entry again cannot
# help, whatever SenderFault says (LocalStack says false for ReceiptHandleIsInvalid).
_REQUEST_CODES = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "InvalidIdFormat",
        "MessageNotInflight",
        "InvalidParameterValue",
        "InvalidParameterValueException",
    }
)


def _chunks(entries: Sequence[BatchEntry]) -> list[Sequence[BatchEntry]]:
    return [entries[i : i + MAX_BATCH_ENTRIES] for i in range(0, len(entries), MAX_BATCH_ENTRIES)]


def _failures(chunk: Sequence[BatchEntry], response: Any) -> list[EntryFailure]:
    failed = []
    for item in response.get("Failed") or []:
        try:
            entry = chunk[int(item["Id"])]
        except (KeyError, ValueError, IndexError):
            continue
        failed.append(
            EntryFailure(
                entry=entry,
                code=str(item.get("Code", "")),
                detail=str(item.get("Message", "")),
                sender_fault=bool(item.get("SenderFault")) or item.get("Code") in _REQUEST_CODES,
            )
        )
    return failed


_DEPTH_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """A queue's approximate message counts, as SQS reports them.

    Attributes:
        visible: messages ready to be received.
        in_flight: messages received and not yet deleted or visible again.
        delayed: messages sent with a delay that has not yet passed.
    """

    visible: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        """Every message still on the queue."""
        return self.visible + self.in_flight + self.delayed


def read_depth(client: SqsClient, queue_url: str) -> QueueDepth:
    """Read ``queue_url``'s approximate counts with one GetQueueAttributes call.

    Raises:
        botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError: the call failed.
    """
    attributes = client.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=list(_DEPTH_ATTRIBUTES)
    )["Attributes"]
    visible, in_flight, delayed = (int(attributes.get(name, 0)) for name in _DEPTH_ATTRIBUTES)
    return QueueDepth(visible=visible, in_flight=in_flight, delayed=delayed)
