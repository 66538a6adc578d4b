"""Sending: per-message options (delay, FIFO group and deduplication ids) and batches.

``SendMessageBatch`` takes at most ten entries and 1 MiB in all; ``send_batch`` packs
entries into as few requests as those bounds allow, retries what failed on SQS's side,
and returns one ``SendResult`` per entry, in order: nothing is dropped without a result.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqsx.attributes import check_message
from sqsx.codec import DEFAULT_MAX_MESSAGE_BYTES, TASK_NAME_ATTRIBUTE, message_size
from sqsx.exceptions import InvalidMessageError, WrongTypeError
from sqsx.sqs import MAX_BATCH_ENTRIES, SqsClient, error_code, is_transient, retry_delay

__all__ = [
    "MAX_DELAY_SECONDS",
    "OutgoingMessage",
    "RawMessage",
    "SendResult",
    "TaskMessage",
    "content_deduplication_id",
    "send_batch",
]

logger = logging.getLogger("sqsx.sending")

#: SQS's largest per-message delay: 15 minutes.
MAX_DELAY_SECONDS = 900
_ATTEMPTS = 4


@dataclass(frozen=True, slots=True)
class TaskMessage:
    """One task for ``Queue.send_tasks``; the options mean what ``Queue.send_task`` says."""

    task_name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    delay_seconds: int | None = None
    group_id: str | None = None
    deduplication_id: str | None = None
    attributes: Mapping[str, Mapping[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message for ``RawQueue.send_messages``; options as ``RawQueue.send_message``."""

    body: str
    attributes: Mapping[str, Mapping[str, Any]] | None = None
    delay_seconds: int | None = None
    group_id: str | None = None
    deduplication_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to send, with its options checked against the queue.

    Build it with ``OutgoingMessage.build``, which raises ``ValueError`` for an option SQS
    would refuse (a delay above 900 s, a delay or missing group id on a FIFO queue...).
    """

    body: str
    attributes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    delay_seconds: int | None = None
    group_id: str | None = None
    deduplication_id: str | None = None

    @classmethod
    def build(
        cls,
        body: str,
        attributes: Mapping[str, Mapping[str, Any]] | None,
        *,
        fifo: bool,
        delay_seconds: int | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
    ) -> OutgoingMessage:
        """Check the message against SQS's rules (``sqsx.attributes.check_message``:
        at most 10 attributes, names and characters SQS accepts) and the options for a
        FIFO (``fifo=True``) or standard queue.

        Args:
            body: the message body.
            attributes: message attributes in boto3's shape.
            fifo: whether the queue is a FIFO queue (its URL ends in ``.fifo``).
            delay_seconds: 0 to 900 s before the message can be received; standard
                queues only (FIFO queues take a delay only as a queue setting).
            group_id: ``MessageGroupId``; required on FIFO queues.
            deduplication_id: ``MessageDeduplicationId``, FIFO only. Without one, a FIFO
                message gets ``content_deduplication_id``: the same body, attributes and
                group sent again within SQS's 5-minute window is a duplicate, whether or
                not the queue has content-based deduplication.
        """
        if delay_seconds is not None:
            if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
                raise InvalidMessageError(
                    f"delay_seconds must be between 0 and {MAX_DELAY_SECONDS}, got {delay_seconds}"
                )
            if fifo:
                raise InvalidMessageError(
                    "FIFO queues refuse a per-message delay_seconds; set DelaySeconds on the "
                    "queue instead"
                )
        if fifo and not group_id:
            raise InvalidMessageError("a FIFO queue needs a group_id for every message")
        if deduplication_id is not None and not fifo:
            raise InvalidMessageError("deduplication_id applies to FIFO queues only")
        check_message(body, attributes)
        if fifo and deduplication_id is None:
            deduplication_id = content_deduplication_id(body, attributes, group_id)
        return cls(body, dict(attributes or {}), delay_seconds, group_id, deduplication_id)

    def checked(self) -> OutgoingMessage:
        """This message, after checking it against SQS's rules again (for a message a
        ``before_send`` hook changed: an added attribute may be the eleventh).

        Raises:
            InvalidMessageError: see ``sqsx.attributes.check_message``.
        """
        check_message(self.body, self.attributes)
        return self

    @property
    def size(self) -> int:
        """Bytes SQS counts for this message."""
        return message_size(self.body, self.attributes)

    def params(self) -> dict[str, Any]:
        """SendMessage / SendMessageBatch entry parameters (without ``QueueUrl`` or ``Id``)."""
        params: dict[str, Any] = {"MessageBody": self.body}
        if self.attributes:
            params["MessageAttributes"] = dict(self.attributes)
        if self.delay_seconds is not None:
            params["DelaySeconds"] = self.delay_seconds
        if self.group_id is not None:
            params["MessageGroupId"] = self.group_id
        if self.deduplication_id is not None:
            params["MessageDeduplicationId"] = self.deduplication_id
        return params


def content_deduplication_id(
    body: str, attributes: Mapping[str, Mapping[str, Any]] | None, group_id: str | None
) -> str:
    """A ``MessageDeduplicationId`` from what the message says: SHA-256 (64 hex digits, within
    SQS's 128) of the body, the attributes and the group id.

    SQS's own content-based deduplication hashes the body only, so two tasks with the same
    kwargs but different ``TaskName`` attributes, or two groups' identical messages, would be
    one message to it; here they are not.
    """
    digest = hashlib.sha256(body.encode())
    canonical = json.dumps(
        [group_id, attributes or {}], sort_keys=True, default=_attribute_bytes
    ).encode()
    digest.update(b"\0" + canonical)
    return digest.hexdigest()


def _attribute_bytes(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):  # BinaryValue
        return base64.b64encode(bytes(value)).decode()
    raise WrongTypeError(f"message attribute value of type {type(value).__name__} is not sendable")


@dataclass(frozen=True, slots=True)
class SendResult:
    """What became of one entry of a batch send.

    Attributes:
        index: the entry's position in what was passed in.
        message_id: SQS's id when it was sent, else ``None``.
        error: why it was not sent (an SQS error code, or ``MessageTooLarge``), else ``None``.
        sequence_number: FIFO queues' sequence number, when sent to one.
    """

    index: int
    message_id: str | None = None
    error: str | None = None
    sequence_number: str | None = None

    @property
    def ok(self) -> bool:
        """True when SQS accepted the entry."""
        return self.message_id is not None


def merge_attributes(
    task_attributes: Mapping[str, Mapping[str, Any]],
    extra: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, Mapping[str, Any]]:
    """A task's ``TaskName`` attribute plus the caller's own (which may not redefine it)."""
    if extra and TASK_NAME_ATTRIBUTE in extra:
        raise InvalidMessageError(
            f"the {TASK_NAME_ATTRIBUTE} message attribute is reserved for sqsx"
        )
    return {**task_attributes, **(extra or {})}


def send_batch(
    client: SqsClient,
    queue_url: str,
    messages: Sequence[OutgoingMessage],
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_request_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> list[SendResult]:
    """Send ``messages`` with SendMessageBatch and return one result per message, in order.

    Messages of one FIFO group keep their order: after an entry of a group fails and waits
    for another try, the group's later entries wait with it.

    An entry over ``max_message_bytes`` is not sent (error ``MessageTooLarge``). Entries SQS
    refused on its side, and calls that failed (throttling, 5xx, network), are tried up to
    four times in all; entries refused as the sender's fault, and calls refused for a reason
    retrying cannot fix, are reported at once.
    """
    results: dict[int, SendResult] = {}
    todo: list[int] = []
    for index, message in enumerate(messages):
        if message.size > max_message_bytes:
            logger.warning(
                "not sending entry %d: %d bytes is over the limit of %d queue_url=%s",
                index,
                message.size,
                max_message_bytes,
                queue_url,
            )
            results[index] = SendResult(index, error="MessageTooLarge")
        else:
            todo.append(index)
    for attempt in range(1, _ATTEMPTS + 1):
        if not todo:
            break
        if attempt > 1:
            time.sleep(retry_delay(attempt - 1))
        retry: list[int] = []
        blocked: set[str] = set()  # FIFO groups with an entry waiting for another try
        for chunk in _pack(todo, messages, max_request_bytes):
            held = [index for index in chunk if messages[index].group_id in blocked]
            retry.extend(held)  # sent after the earlier entry of their group, never before
            chunk = [index for index in chunk if index not in held]
            if not chunk:
                continue
            failed = _send_chunk(client, queue_url, messages, chunk, results, attempt)
            retry.extend(failed)
            blocked.update(g for g in (messages[i].group_id for i in failed) if g is not None)
        todo = sorted(retry)
    return [results[index] for index in range(len(messages))]


def _pack(
    indexes: Sequence[int], messages: Sequence[OutgoingMessage], max_request_bytes: int
) -> list[list[int]]:
    chunks: list[list[int]] = []
    current: list[int] = []
    current_bytes = 0
    for index in indexes:
        size = messages[index].size
        if current and (
            len(current) == MAX_BATCH_ENTRIES or current_bytes + size > max_request_bytes
        ):
            chunks.append(current)
            current, current_bytes = [], 0
        current.append(index)
        current_bytes += size
    if current:
        chunks.append(current)
    return chunks


def _send_chunk(
    client: SqsClient,
    queue_url: str,
    messages: Sequence[OutgoingMessage],
    chunk: list[int],
    results: dict[int, SendResult],
    attempt: int,
) -> list[int]:
    """Send one request; record results; return the indexes worth another try."""
    last = attempt == _ATTEMPTS
    try:
        response = client.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(index), **messages[index].params()} for index in chunk],
        )
    except Exception as err:
        code = error_code(err)
        final = last or not is_transient(err)
        logger.warning(
            "SendMessageBatch failed: %s (attempt %d)%s queue_url=%s",
            code,
            attempt,
            "" if final else ", retrying",
            queue_url,
        )
        if final:
            for index in chunk:
                results[index] = SendResult(index, error=code)
            return []
        return list(chunk)
    for item in response.get("Successful") or []:
        index = int(item["Id"])
        results[index] = SendResult(
            index, message_id=item["MessageId"], sequence_number=item.get("SequenceNumber")
        )
    retry = []
    for item in response.get("Failed") or []:
        index = int(item["Id"])
        code = str(item.get("Code", "Failed"))
        if item.get("SenderFault") or last:
            logger.warning(
                "SendMessageBatch refused entry %d: %s queue_url=%s", index, code, queue_url
            )
            results[index] = SendResult(index, error=code)
        else:
            retry.append(index)
    return retry
