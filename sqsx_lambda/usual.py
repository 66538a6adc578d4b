"""Lambda's SQS records in their usual shape, read in as few steps as Python allows.

Nearly every record Lambda delivers has every field, each with its JSON type, and string
message attributes only (a ``TaskName``). These functions read such records with C loops and
one-call subscripts (``map``, ``set``, ``itemgetter``) and give up (``False``, ``None``) on
anything else, which ``sqsx_lambda.records`` then reads field by field and explains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

__all__ = ["SQS_EVENT_SOURCE", "usual_records", "usual_to_boto3"]

#: ``eventSource`` of a record delivered by an SQS event source mapping.
SQS_EVENT_SOURCE = "aws:sqs"

_SOURCE, _MESSAGE_ID = itemgetter("eventSource"), itemgetter("messageId")


def usual_records(records: Sequence[Any]) -> bool:
    """True when every record is a dict from ``aws:sqs`` with a message id, checked in C
    loops (``map``, ``set``); ``False`` leaves it to ``records_of``'s loop to say which
    record is wrong."""
    try:
        if set(map(type, records)) != {dict}:
            return False
        if set(map(_SOURCE, records)) != {SQS_EVENT_SOURCE}:
            return False
        ids = list(map(_MESSAGE_ID, records))
    except KeyError:  # a field missing
        return False
    return set(map(type, ids)) == {str} and "" not in ids


# The fields every record Lambda delivers has, fetched in one C call.
_USUAL_FIELDS = itemgetter(
    "messageId", "receiptHandle", "md5OfBody", "body", "attributes", "messageAttributes"
)


def usual_to_boto3(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """``to_boto3`` of a record as Lambda delivers it (every field there with its JSON type,
    string message attributes), read by subscripts; ``None`` for any other record (then
    ``to_boto3`` reads it field by field, and says what is wrong)."""
    try:
        message_id, handle, md5_of_body, body, attributes, message_attributes = _USUAL_FIELDS(
            record
        )
        if not (
            type(message_id) is type(handle) is type(md5_of_body) is type(body) is str
            and handle
            and type(attributes) is dict
            and type(message_attributes) is dict
        ):
            return None
        copied = dict(attributes)
        "".join(copied)  # system attributes are strings (two C loops: join takes only those)
        "".join(copied.values())
        converted = {}
        for name, value in message_attributes.items():
            string, data_type = value["stringValue"], value["dataType"]
            if not (
                type(name) is type(string) is type(data_type) is str and string and data_type
            ) or (
                value["stringListValues"] or value["binaryListValues"] or value.get("binaryValue")
            ):
                return None
            converted[name] = {"DataType": data_type, "StringValue": string}
    except (KeyError, TypeError):  # a field missing, not an object, or not a string
        return None
    message: dict[str, Any] = {
        "MessageId": message_id,
        "ReceiptHandle": handle,
        "MD5OfBody": md5_of_body,
        "Body": body,
        "Attributes": copied,
    }
    md5_of_attributes = record.get("md5OfMessageAttributes")
    if md5_of_attributes:
        message["MD5OfMessageAttributes"] = md5_of_attributes
    if converted:
        message["MessageAttributes"] = converted
    return message
