"""The slice of the SQS API sqsx uses: batched calls, entry failures, error classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

__all__ = [
    "BatchEntry",
    "EntryFailure",
    "QueueDepth",
    "SqsClient",
    "change_visibility_batch",
    "delete_batch",
    "error_code",
    "is_missing_queue",
    "is_permanent",
    "is_transient",
    "read_depth",
]

#: SQS's limit on entries in one batch request.
MAX_BATCH_ENTRIES = 10

# Codes that say the queue does not exist.
_MISSING_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "InvalidAddress"}
)
# Codes that retrying cannot fix: the queue is gone or we may not touch it.
_PERMANENT_CODES = _MISSING_QUEUE_CODES | {
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidSecurity",
    "KMS.AccessDeniedException",
    "KMS.DisabledException",
}


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


def error_code(err: BaseException) -> str:
    """The SQS error code of ``err``, or its class name for network errors."""
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code", "ClientError"))
    return type(err).__name__


def is_missing_queue(err: BaseException) -> bool:
    """True when SQS says the queue does not exist."""
    return isinstance(err, ClientError) and error_code(err) in _MISSING_QUEUE_CODES


def is_permanent(err: BaseException) -> bool:
    """True when retrying the call that raised ``err`` cannot succeed."""
    return isinstance(err, ClientError) and error_code(err) in _PERMANENT_CODES


_THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "AWS.SimpleQueueService.RequestThrottled",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "KMS.ThrottlingException",
    }
)


def is_transient(err: BaseException) -> bool:
    """True for errors worth retrying as they are: throttling, 5xx and network errors."""
    if isinstance(err, ParamValidationError):  # a request botocore refuses to send
        return False
    if isinstance(err, ClientError):
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(err) in _THROTTLING_CODES or int(status or 0) >= 500
    return isinstance(err, BotoCoreError)


def is_sqs_error(err: BaseException) -> bool:
    """True for errors of the SQS call itself (API errors and network errors)."""
    return isinstance(err, ClientError | BotoCoreError)


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

    Returns the entries SQS refused; raises like ``delete_batch`` when a call fails whole.
    """
    failures: list[EntryFailure] = []
    for chunk in _chunks(entries):
        response = client.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {
                    "Id": str(i),
                    "ReceiptHandle": e.receipt_handle,
                    "VisibilityTimeout": e.visibility_timeout,
                }
                for i, e in enumerate(chunk)
            ],
        )
        failures.extend(_failures(chunk, response))
    return failures


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
