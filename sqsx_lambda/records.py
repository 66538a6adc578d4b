"""Lambda's SQS event shape, and the boto3 ReceiveMessage shape handlers already know.

Lambda hands a function ``{"Records": [...]}`` whose records spell their fields in
camelCase (``messageId``, ``receiptHandle``, ``messageAttributes`` with ``stringValue`` /
``binaryValue`` / ``dataType``, binary values as base64 text). A handler written for the
polling worker expects boto3's shape (``MessageId``, ``ReceiptHandle``, ``MessageAttributes``
with ``StringValue`` / ``BinaryValue`` as bytes / ``DataType``). ``to_boto3`` converts the
first into the second; ``to_lambda`` goes back, for tests and sample events.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

from sqsx.clip import shown
from sqsx.codec import is_object
from sqsx.exceptions import SqsxError, UnprocessableMessageError
from sqsx.message import Message, receive_count_of
from sqsx_lambda.queues import arn_parts, queue_url_for, queue_url_from_arn
from sqsx_lambda.usual import SQS_EVENT_SOURCE, usual_records, usual_to_boto3

__all__ = [
    "EventError",
    "RecordError",
    "envelope",
    "message_of",
    "queue_url_for",
    "queue_url_from_arn",
    "read_record",
    "records_of",
    "to_boto3",
    "to_lambda",
    "usual_to_boto3",
]


# Lambda attribute key -> boto3 attribute key, for message attribute values.
_VALUE_KEYS = (
    ("stringValue", "StringValue"),
    ("stringListValues", "StringListValues"),
)
_BINARY_KEYS = (
    ("binaryValue", "BinaryValue"),
    ("binaryListValues", "BinaryListValues"),
)


class EventError(SqsxError, ValueError):
    """The event is not an SQS event, or cannot be answered record by record.

    Raised before any handler runs; the message names what is wrong. Lambda then retries
    the whole batch (or sends it to the function's on-failure destination).
    """


class RecordError(UnprocessableMessageError, ValueError):
    """One record of an SQS event cannot be read; only that record fails, and it is treated
    as any unprocessable message (backed off, or deleted under ``poison_policy="delete"``).

    Attributes:
        envelope: what could be read of the record (message id, receipt handle when
            present, receive count, group id), so that it can still be reported and
            given a backoff.
    """

    def __init__(self, reason: str, envelope: Message) -> None:
        super().__init__(f"record {envelope.message_id}: {reason}")
        self.reason = reason
        self.envelope = envelope


def records_of(event: object) -> Sequence[Mapping[str, Any]]:
    """The records of an SQS event, each checked to be an SQS record with a message id.

    A record without a usable ``messageId`` cannot be reported on its own (Lambda fails
    the whole batch on an invalid ``itemIdentifier``), so it makes the event invalid.

    Raises:
        EventError: ``event`` is not a mapping, has no ``Records`` list, or holds a record
            that is not an object, does not come from ``aws:sqs``, or has no message id.
    """
    if not is_object(event):
        raise EventError(f"the event is a {type(event).__name__}, not an SQS event object")
    records = event.get("Records")
    if records is None:
        keys = ", ".join(sorted(str(key) for key in event)[:5]) or "none"
        raise EventError(
            f"the event has no 'Records' list (its keys: {keys}); is this function "
            "triggered by an SQS event source mapping?"
        )
    if not isinstance(records, Sequence) or isinstance(records, str | bytes):
        raise EventError(f"the event's 'Records' is a {type(records).__name__}, not a list")
    if usual_records(records):
        return records
    for index, record in enumerate(records):
        if not is_object(record):
            raise EventError(f"Records[{index}] is a {type(record).__name__}, not an object")
        source = record.get("eventSource")
        if source != SQS_EVENT_SOURCE:
            raise EventError(
                f"Records[{index}] has eventSource {source!r}, not {SQS_EVENT_SOURCE!r}: "
                "this handler only takes SQS events"
            )
        message_id = record.get("messageId")
        if not isinstance(message_id, str) or not message_id:
            raise EventError(
                f"Records[{index}] has no messageId, so it cannot be reported on its own"
            )
    return records


def envelope(record: Mapping[str, Any], raw: Mapping[str, Any] | None = None) -> Message:
    """What identifies ``record`` (id, receipt handle, receive count, group), read leniently.

    Args:
        record: a Lambda SQS record whose ``messageId`` is known to be a string.
        raw: the ``Message.raw`` to carry (default: an empty mapping).
    """
    attributes = record.get("attributes")
    if not is_object(attributes):
        attributes = {}
    handle = record.get("receiptHandle")
    group = attributes.get("MessageGroupId")
    return Message(
        raw={} if raw is None else raw,
        message_id=str(record.get("messageId", "")),
        receipt_handle=handle if isinstance(handle, str) else "",
        receive_count=receive_count_of(attributes),
        group_id=group if isinstance(group, str) else None,
    )


def read_record(record: Mapping[str, Any]) -> Message:
    """``record`` as a ``Message`` whose ``raw`` is the boto3 ReceiveMessage shape.

    Raises:
        RecordError: the record cannot be converted; its ``envelope`` still identifies it.
    """
    raw = usual_to_boto3(record)
    if raw is None:
        try:
            raw = to_boto3(record)
        except ValueError as err:
            raise RecordError(str(err), envelope(record)) from err
    return message_of(raw)


def message_of(raw: dict[str, Any]) -> Message:
    """The ``Message`` of ``raw``, a record converted by ``to_boto3``."""
    attributes = raw["Attributes"]
    count = attributes.get("ApproximateReceiveCount")
    if type(count) is str and count.isdecimal():  # what int() takes: "1", "2"...
        count = int(count) or 1
    else:
        count = receive_count_of(attributes)
    return Message(
        raw, raw["MessageId"], raw["ReceiptHandle"], count, attributes.get("MessageGroupId")
    )


def to_boto3(record: Mapping[str, Any]) -> dict[str, Any]:
    """Convert a Lambda SQS record to a message as boto3's ``receive_message`` returns it.

    ``binaryValue`` (base64 text in the event) becomes ``BinaryValue`` bytes, as boto3
    gives them. ``MD5OfMessageAttributes`` is present only when the record has one.

    Raises:
        ValueError: a field is missing or has the wrong type; the message names it.
    """
    handle = record.get("receiptHandle")
    if not isinstance(handle, str) or not handle:
        raise ValueError("receiptHandle is missing")
    body = record.get("body")
    if not isinstance(body, str):
        raise ValueError(f"body is a {type(body).__name__}, not a string")
    attributes = record.get("attributes")
    if attributes is None:
        attributes = {}
    if not is_object(attributes):
        raise ValueError(f"attributes is a {type(attributes).__name__}, not an object")
    message: dict[str, Any] = {
        "MessageId": str(record.get("messageId", "")),
        "ReceiptHandle": handle,
        "MD5OfBody": record.get("md5OfBody") or "",
        "Body": body,
        "Attributes": _strings(attributes),
    }
    md5_of_attributes = record.get("md5OfMessageAttributes")
    if md5_of_attributes:
        message["MD5OfMessageAttributes"] = md5_of_attributes
    message_attributes = record.get("messageAttributes")
    if message_attributes is None:
        message_attributes = {}
    if not is_object(message_attributes):
        raise ValueError(
            f"messageAttributes is a {type(message_attributes).__name__}, not an object"
        )
    if message_attributes:
        message["MessageAttributes"] = {
            str(name): _attribute_to_boto3(str(name), value)
            for name, value in message_attributes.items()
        }
    return message


def _strings(attributes: Mapping[Any, Any]) -> dict[str, str]:
    """System attributes as boto3 gives them: strings (Lambda's already are)."""
    copied = dict(attributes)
    try:  # two C loops: ``join`` takes strings only
        "".join(copied)
        "".join(copied.values())
    except TypeError:
        return {str(key): str(value) for key, value in attributes.items()}
    return copied


def _attribute_to_boto3(name: str, value: object) -> dict[str, Any]:
    if not is_object(value):
        raise ValueError(f"message attribute {shown(name)} is not an object")
    data_type = value.get("dataType")
    if not isinstance(data_type, str) or not data_type:
        raise ValueError(f"message attribute {shown(name)} has no dataType")
    string = value.get("stringValue")
    if (
        type(string) is str  # the usual attribute (a TaskName): one string, no lists
        and string
        and not value.get("binaryValue")
        and not value.get("stringListValues")
        and not value.get("binaryListValues")
    ):
        return {"DataType": data_type, "StringValue": string}
    converted: dict[str, Any] = {"DataType": data_type}
    for lambda_key, boto3_key in _VALUE_KEYS:
        if value.get(lambda_key):
            converted[boto3_key] = value[lambda_key]
    for lambda_key, boto3_key in _BINARY_KEYS:
        item = value.get(lambda_key)
        if not item:
            continue
        try:
            if isinstance(item, str):
                converted[boto3_key] = _b64decode(item)
            else:
                converted[boto3_key] = [_b64decode(part) for part in item]
        except (binascii.Error, TypeError, ValueError) as err:
            raise ValueError(
                f"message attribute {shown(name)} has a {lambda_key} that is not base64"
            ) from err
    return converted


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def to_lambda(
    message: Mapping[str, Any], *, event_source_arn: str, aws_region: str | None = None
) -> dict[str, Any]:
    """Convert a boto3 ReceiveMessage message to the record Lambda would deliver.

    For tests and sample events: receive real messages, convert them, hand the event to
    a handler. Receive with ``AttributeNames=["All"]`` and ``MessageAttributeNames=["All"]``
    so the record carries what Lambda's would.

    Args:
        message: one entry of ``receive_message(...)["Messages"]``.
        event_source_arn: the queue's ARN (``arn:aws:sqs:REGION:ACCOUNT:NAME``).
        aws_region: the record's ``awsRegion`` (default: the ARN's region).
    """
    region = aws_region or arn_parts(event_source_arn)[0]
    attributes = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        converted: dict[str, Any] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": None,
            "stringListValues": list(value.get("StringListValues") or []),
            "binaryListValues": [
                base64.b64encode(part).decode("ascii")
                for part in value.get("BinaryListValues") or []
            ],
            "dataType": value["DataType"],
        }
        binary = value.get("BinaryValue")
        if binary is not None:
            converted["binaryValue"] = base64.b64encode(binary).decode("ascii")
        attributes[name] = {key: item for key, item in converted.items() if item is not None}
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "md5OfMessageAttributes": message.get("MD5OfMessageAttributes"),
        "eventSource": SQS_EVENT_SOURCE,
        "eventSourceARN": event_source_arn,
        "awsRegion": region,
    }
