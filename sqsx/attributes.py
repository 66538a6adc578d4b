"""What SQS accepts in a message, checked before sending: local servers accept more.

moto and LocalStack take an 11th message attribute and characters SQS refuses, so code
that passes every local test could fail in production; ``check_message`` refuses the
same things SQS does, with sqsx's own error, before any call.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from sqsx.clip import shown
from sqsx.codec import is_object
from sqsx.exceptions import InvalidMessageError

__all__ = ["MAX_ATTRIBUTES", "check_message"]

# What SQS accepts in a message, checked before sending (local servers accept more):
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html
# (at most 10 attributes; names of A-Z a-z 0-9 _ - . up to 256 characters, not starting
# with AWS. or Amazon. in any case, not starting or ending with a period, no two periods
# in a row; data types up to 256 characters) and
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html
# (the body, and string values, may hold #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
# #x10000-#x10FFFF only).

#: SQS's limit on message attributes per message.
MAX_ATTRIBUTES = 10
_MAX_NAME_CHARS = 256
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_RESERVED_PREFIXES = ("aws.", "amazon.")


@functools.cache
def _outside_sqs_set() -> re.Pattern[str]:
    # The complement of SQS's set within what a Python str can hold, compiled on first use
    # (not on import: a cold start of a function that never sends does not pay for it).
    return re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


_DATA_TYPES = ("String", "Number", "Binary")


def check_message(body: str, attributes: Mapping[str, Mapping[str, Any]] | None) -> None:
    """Refuse what SQS would refuse in ``body`` and ``attributes`` (boto3's shape), with
    the rule that was broken; local servers (moto, LocalStack) accept some of it.

    Raises:
        InvalidMessageError: a ``ValueError``: more than 10 attributes, a name SQS
            forbids, a data type other than ``String``, ``Number`` or ``Binary`` (with an
            optional ``.label``), an empty value, or a character outside SQS's set.
    """
    _check_text("the message body", body)
    if not body:
        raise InvalidMessageError("the message body is empty; SQS needs at least 1 character")
    if not attributes:
        return
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidMessageError(
            f"a message has at most {MAX_ATTRIBUTES} message attributes, got "
            f"{len(attributes)} ({', '.join(shown(n, 40) for n in attributes)})"
        )
    for name, attribute in attributes.items():
        _check_name(name)
        if not is_object(attribute):
            raise InvalidMessageError(f"message attribute {shown(name)} is not a mapping")
        _check_attribute(name, attribute)


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidMessageError(
            f"a message attribute name must be a non-empty string: {shown(name)}"
        )
    problem = ""
    if len(name) > _MAX_NAME_CHARS:
        problem = f"is {len(name)} characters, over {_MAX_NAME_CHARS}"
    elif _NAME.fullmatch(name) is None:
        problem = "has a character other than A-Z, a-z, 0-9, '_', '-' and '.'"
    elif name.lower().startswith(_RESERVED_PREFIXES):
        problem = "starts with a prefix SQS reserves (AWS. or Amazon.)"
    elif name.startswith(".") or name.endswith(".") or ".." in name:
        problem = "starts or ends with a period, or has two in a row"
    if problem:
        raise InvalidMessageError(f"message attribute name {shown(name)} {problem}")


def _check_attribute(name: str, attribute: Mapping[str, Any]) -> None:
    data_type = attribute.get("DataType")
    if not isinstance(data_type, str) or len(data_type) > _MAX_NAME_CHARS:
        raise InvalidMessageError(
            f"message attribute {shown(name)} needs a DataType string of at most "
            f"{_MAX_NAME_CHARS} characters, got {shown(data_type)}"
        )
    base, _, label = data_type.partition(".")
    if base not in _DATA_TYPES or (label == "" and data_type != base):
        raise InvalidMessageError(
            f"message attribute {shown(name)} has DataType {shown(data_type)}; SQS takes "
            "String, Number or Binary, optionally followed by .label"
        )
    _check_text(f"the DataType of message attribute {shown(name)}", data_type)
    key = "BinaryValue" if base == "Binary" else "StringValue"
    value = attribute.get(key)
    if not isinstance(value, str | bytes | bytearray) or not value:
        raise InvalidMessageError(f"message attribute {shown(name)} needs a non-empty {key}")
    if isinstance(value, str) and base != "Binary":
        _check_text(f"the value of message attribute {shown(name)}", value)


def _check_text(what: str, text: str) -> None:
    bad = _outside_sqs_set().search(text)
    if bad is not None:
        raise InvalidMessageError(
            f"{what} has a character SQS refuses, U+{ord(bad.group()):04X} at position "
            f"{bad.start()} (allowed: #x9, #xA, #xD, #x20-#xD7FF, #xE000-#xFFFD, "
            "#x10000-#x10FFFF)"
        )
