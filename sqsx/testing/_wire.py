"""SQS's wire details for the simulated client: error codes, checksums, response shapes."""

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
) -> dict[str, Any]:
    """A message in ReceiveMessage's shape: ``base`` (id, handle, body, checksum) plus the
    system attributes in ``system`` and the message attributes in ``wanted`` (``All``,
    names, or ``prefix.*``)."""
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
            base["MD5OfMessageAttributes"] = attributes_md5(chosen)
            base["MessageAttributes"] = chosen
    return base
