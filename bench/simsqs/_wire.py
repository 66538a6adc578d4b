"""SQS's wire details for the simulated client: error codes, checksums, sizes, the checks a
SendMessage gets, response shapes.

Written from the Amazon SQS API Reference, not from any server's behaviour:

- error codes: each action's "Errors" section (SendMessage: InvalidMessageContents,
  QueueDoesNotExist...; batches: EmptyBatchRequest, TooManyEntriesInBatchRequest,
  BatchEntryIdsNotDistinct, InvalidBatchEntryId, BatchRequestTooLong) and "Common Errors"
  (InvalidParameterValue); the wire code is the query-compatible one SQS sends in its
  ``x-amzn-query-error`` header (``AWS.SimpleQueueService.NonExistentQueue``), which boto3
  puts in ``Error.Code`` (the short name goes to ``Error.QueryErrorCode``);
  https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/CommonErrors.html
- ``SenderFault`` of a failed batch entry: "whether the error happened due to the caller
  of the batch API action" (BatchResultErrorEntry), true for every refusal made here;
  https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_BatchResultErrorEntry.html
- message contents: "#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to
  #x10FFFF", anything else refused with InvalidMessageContents (MessageBody of
  API_SendMessage; a String attribute value "has the same restrictions on the content as
  the message body", API_MessageAttributeValue);
  https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html
- message attributes: at most 10 per message; a name of at most 256 characters from
  alphanumerics, ``_``, ``-`` and ``.``, not starting or ending with a period, without
  ``..``, and not starting with ``AWS.`` or ``Amazon.`` in any casing (MessageAttribute.N
  of API_SendMessage); a type of ``String``, ``Number`` or ``Binary``, optionally followed
  by ``.label``;
- size: "all parts of the message attribute, including Name, Type, and Value, are part of
  the message size restriction", counted here as UTF-8 bytes of the body, each name, each
  type and each string value, plus a binary value's bytes (API_MessageAttributeValue).
"""

from __future__ import annotations

import functools
import json
import re
import struct
from collections.abc import Collection, Mapping, Sequence
from hashlib import md5
from typing import Any

import botocore.session
from botocore.errorfactory import ClientExceptionsFactory
from botocore.validate import ParamValidator

MAX_VISIBILITY_SECONDS = 43_200
MAX_DELAY_SECONDS = 900
MAX_WAIT_SECONDS = 20
MAX_BATCH_ENTRIES = 10
MAX_MESSAGE_BYTES = 1_048_576

QUEUE_DEFAULTS = {
    "DelaySeconds": "0",
    "MaximumMessageSize": str(MAX_MESSAGE_BYTES),
    "MessageRetentionPeriod": "345600",
    "ReceiveMessageWaitTimeSeconds": "0",
    "VisibilityTimeout": "30",
}
_ATTRIBUTE_BOUNDS = {
    "VisibilityTimeout": MAX_VISIBILITY_SECONDS,
    "DelaySeconds": MAX_DELAY_SECONDS,
    "ReceiveMessageWaitTimeSeconds": MAX_WAIT_SECONDS,
    "MaximumMessageSize": MAX_MESSAGE_BYTES,
}
_SYSTEM_ATTRIBUTES = (
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
)
SENDER_ID = "AIDASIMULATEDSQSSENDER"
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
MAX_MESSAGE_ATTRIBUTES = 10
MAX_ATTRIBUTE_NAME_CHARS = 256
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_RESERVED_PREFIXES = ("aws.", "amazon.")
_DATA_TYPE = re.compile(r"^(String|Number|Binary)(\..+)?$")
# What SQS refuses in a body or a String value: outside #x9 | #xA | #xD | #x20-#xD7FF |
# #xE000-#xFFFD | #x10000-#x10FFFF (Python strings hold no surrogate pairs, only lone ones).
_INVALID_CHARACTER = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Refused(Exception):
    """An SQS error response: its wire ``code``, the ``query_code`` boto3 picks the
    exception class by, and its text."""

    def __init__(self, code: str, message: str, query_code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.query_code = query_code or code
        self.message = message

    def entry(self, entry_id: str) -> dict[str, Any]:
        """This refusal as a ``Failed`` entry of a batch response."""
        return {"Id": entry_id, "SenderFault": True, "Code": self.code, "Message": self.message}


def no_queue() -> Refused:
    return Refused(
        "AWS.SimpleQueueService.NonExistentQueue",
        "The specified queue does not exist.",
        "QueueDoesNotExist",
    )


def invalid(message: str) -> Refused:
    return Refused("InvalidParameterValue", message)


def out_of_range(parameter: str, value: object, low: int, high: int) -> Refused:
    return invalid(
        f"Value {value} for parameter {parameter} is invalid. Reason: must be between "
        f"{low} and {high}, if provided."
    )


def bad_handle() -> Refused:
    return Refused("ReceiptHandleIsInvalid", "The input receipt handle is invalid.")


@functools.lru_cache(maxsize=1)
def service() -> tuple[Any, ParamValidator, Any]:
    """botocore's SQS model, a parameter validator and the client exception classes
    (loaded once per process, about 0.2 s)."""
    model = botocore.session.get_session().get_service_model("sqs")
    return model, ParamValidator(), ClientExceptionsFactory().create_client_exceptions(model)


def attributes_md5(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """``MD5OfMessageAttributes`` as SQS computes it: attributes sorted by name, each as
    length-prefixed name, data type, a transport byte (1 string, 2 binary) and value."""
    digest = md5(usedforsecurity=False)
    for name in sorted(attributes):
        value = attributes[name]
        for field in (name, value["DataType"]):
            data = str(field).encode("utf-8")
            digest.update(struct.pack("!I", len(data)) + data)
        if "StringValue" in value:
            data, kind = str(value["StringValue"]).encode("utf-8"), 1
        else:
            raw = value.get("BinaryValue", b"")
            data, kind = (raw if isinstance(raw, bytes) else str(raw).encode("utf-8")), 2
        digest.update(bytes([kind]) + struct.pack("!I", len(data)) + data)
    return digest.hexdigest()


def message_bytes(body: str, attributes: Mapping[str, Mapping[str, Any]]) -> int:
    """The message's size as SQS counts it: UTF-8 bytes of the body and of every
    attribute's name, type and string value, and a binary value's bytes."""
    size = len(body.encode("utf-8"))
    for name, value in attributes.items():
        size += len(name.encode("utf-8")) + len(str(value["DataType"]).encode("utf-8"))
        if "StringValue" in value:
            size += len(str(value["StringValue"]).encode("utf-8"))
        else:
            raw = value.get("BinaryValue", b"")
            size += len(raw if isinstance(raw, bytes) else str(raw).encode("utf-8"))
    return size


def check_message(body: str, attributes: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse what SendMessage refuses in a body and its message attributes."""
    if not body:
        raise invalid("The request must contain the parameter MessageBody.")
    if _INVALID_CHARACTER.search(body):
        raise invalid_contents()
    if len(attributes) > MAX_MESSAGE_ATTRIBUTES:
        raise invalid(
            f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum "
            f"[{MAX_MESSAGE_ATTRIBUTES}]."
        )
    for name, value in attributes.items():
        _check_attribute_name(name)
        data_type = str(value.get("DataType", ""))
        if not _DATA_TYPE.match(data_type):
            raise invalid(f"The message attribute '{name}' has an invalid message attribute type.")
        has_string, has_binary = "StringValue" in value, "BinaryValue" in value
        if not (has_string or has_binary):
            raise invalid(f"The message attribute '{name}' must contain a value.")
        if data_type.startswith("Binary") != has_binary or (has_string and has_binary):
            raise invalid(
                f"The message attribute '{name}' with type '{data_type}' must use field "
                f"'{'BinaryValue' if data_type.startswith('Binary') else 'StringValue'}'."
            )
        if has_string and _INVALID_CHARACTER.search(str(value["StringValue"])):
            raise invalid_contents()


def _check_attribute_name(name: str) -> None:
    reason = ""
    if not name or len(name) > MAX_ATTRIBUTE_NAME_CHARS:
        reason = f"must be 1 to {MAX_ATTRIBUTE_NAME_CHARS} characters long"
    elif not _ATTRIBUTE_NAME.match(name):
        reason = "can only contain alphanumeric characters, underscores, hyphens and periods"
    elif name.startswith(".") or name.endswith(".") or ".." in name:
        reason = "must not start or end with a period or hold two periods in a row"
    elif name.lower().startswith(_RESERVED_PREFIXES):
        reason = "must not start with the reserved prefixes AWS. or Amazon."
    if reason:
        raise invalid(f"Message attribute name '{name[:300]}' is invalid: it {reason}.")


def invalid_contents() -> Refused:
    return Refused(
        "InvalidMessageContents", "The message contains characters outside the allowed set."
    )


def body_md5(body: str) -> str:
    return md5(body.encode("utf-8"), usedforsecurity=False).hexdigest()


def check_queue_attributes(attributes: Mapping[str, str]) -> None:
    """Refuse queue attributes out of SQS's bounds, or a malformed RedrivePolicy."""
    for name, value in attributes.items():
        bound = _ATTRIBUTE_BOUNDS.get(name)
        if bound is not None and not (value.isdigit() and int(value) <= bound):
            raise Refused("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
        if name == "RedrivePolicy" and redrive(value) is None:
            raise Refused("InvalidAttributeValue", "Invalid value for the parameter RedrivePolicy.")


def redrive(policy: str | None) -> tuple[str, int] | None:
    """(dead-letter queue ARN, maxReceiveCount) of a RedrivePolicy JSON, or None."""
    if not policy:
        return None
    try:
        parsed = json.loads(policy)
        return str(parsed["deadLetterTargetArn"]), int(parsed["maxReceiveCount"])
    except (ValueError, KeyError, TypeError):
        return None


def check_batch(entries: Sequence[Mapping[str, Any]], kind: str) -> None:
    """Refuse a batch request as SQS does: empty, over ten entries, bad or repeated ids."""
    if not entries:
        raise Refused(
            "AWS.SimpleQueueService.EmptyBatchRequest",
            f"There should be at least one {kind} in the request.",
            "EmptyBatchRequest",
        )
    if len(entries) > MAX_BATCH_ENTRIES:
        raise Refused(
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are 10. You have sent {len(entries)}.",
            "TooManyEntriesInBatchRequest",
        )
    seen: set[str] = set()
    for entry in entries:
        entry_id = entry["Id"]
        if not _BATCH_ID.match(entry_id):
            raise Refused(
                "AWS.SimpleQueueService.InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and "
                "underscores. It can be at most 80 letters long.",
                "InvalidBatchEntryId",
            )
        if entry_id in seen:
            raise Refused(
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                f"Id {entry_id} repeated.",
                "BatchEntryIdsNotDistinct",
            )
        seen.add(entry_id)


def render_message(
    base: dict[str, Any],
    attributes: Mapping[str, Mapping[str, Any]],
    system_values: Mapping[str, str],
    system: Collection[str],
    wanted: Collection[str],
    all_md5: str | None = None,
) -> dict[str, Any]:
    """A message in ReceiveMessage's shape: ``base`` (id, handle, body, checksum) plus the
    system attributes in ``system`` and the message attributes in ``wanted`` (``All``,
    names, or ``prefix.*``); ``all_md5`` is the checksum of all of ``attributes``, if
    known."""
    if system:
        every = "All" in system
        base["Attributes"] = {
            n: system_values[n] for n in _SYSTEM_ATTRIBUTES if every or n in system
        }
    if wanted and attributes:
        every = "All" in wanted
        prefixes = tuple(w[:-2] for w in wanted if w.endswith(".*"))
        chosen = {
            name: dict(value)
            for name, value in attributes.items()
            if every or name in wanted or (prefixes and name.startswith(prefixes))
        }
        if chosen:
            every_one = all_md5 is not None and len(chosen) == len(attributes)
            base["MD5OfMessageAttributes"] = all_md5 if every_one else attributes_md5(chosen)
            base["MessageAttributes"] = chosen
    return base
