"""The Extended Client wire format: an SQS body that points at a payload in S3.

AWS's Extended Client libraries (Java ``amazon-sqs-java-extended-client-lib``, Python
``amazon-sqs-extended-client``, the SNS ones) put a large payload in S3 and send, as the
SQS body, the JSON array

    ["software.amazon.payloadoffloading.PayloadS3Pointer",
     {"s3BucketName": "<bucket>", "s3Key": "<key>"}]

with the message attribute ``ExtendedPayloadSize`` (``Number``: the payload's size in
UTF-8 bytes). Their 1.x versions wrote the class ``com.amazon.sqs.javamessaging.
MessageS3Pointer`` and the attribute ``SQSLargePayloadSize``; both are read. The other
message attributes stay on the SQS message. Pure functions: no S3 call here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqsx.exceptions import UnprocessableMessageError

__all__ = [
    "LEGACY_POINTER_CLASS",
    "LEGACY_SIZE_ATTRIBUTE",
    "POINTER_CLASS",
    "POINTER_FIELD",
    "SIZE_ATTRIBUTE",
    "MalformedPointerError",
    "PayloadError",
    "PayloadSizeError",
    "PayloadUnavailableError",
    "Pointer",
    "pointer_body",
    "read_pointer",
    "size_attribute_of",
]

#: The pointer class the current Extended Client libraries write.
POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"
#: The pointer class of the 1.x libraries.
LEGACY_POINTER_CLASS = "com.amazon.sqs.javamessaging.MessageS3Pointer"
#: The message attribute holding the payload's size, in bytes.
SIZE_ATTRIBUTE = "ExtendedPayloadSize"
#: The same attribute as the 1.x libraries name it.
LEGACY_SIZE_ATTRIBUTE = "SQSLargePayloadSize"
#: The key of ``sqs_message`` (boto3's shape) that describes a payload read from S3; it is
#: only there for a message that came through S3.
POINTER_FIELD = "S3Payload"

_CLASSES = frozenset({POINTER_CLASS, LEGACY_POINTER_CLASS})
_MAX_POINTER_CHARS = 4096  # a bucket name is at most 63 characters, a key 1,024 bytes


class PayloadError(UnprocessableMessageError):
    """A message points at an S3 payload that can never be read as it stands.

    Attributes:
        bucket: the bucket named by the pointer (``None`` when it could not be read).
        key: the object key named by the pointer (``None`` when it could not be read).
    """

    def __init__(self, reason: str, *, bucket: str | None = None, key: str | None = None) -> None:
        where = f" (bucket={bucket} key={key})" if bucket is not None else ""
        super().__init__(f"{reason}{where}")
        self.bucket = bucket
        self.key = key


class MalformedPointerError(PayloadError):
    """The body or the size attribute is not an Extended Client pointer, or the pointer
    names a bucket this consumer does not accept."""


class PayloadUnavailableError(PayloadError):
    """S3 refused the object for good: it does not exist, or access is denied."""


class PayloadSizeError(PayloadError):
    """The object is larger than allowed, or its size disagrees with the size attribute."""


@dataclass(frozen=True, slots=True)
class Pointer:
    """Where a payload lives, and the size its producer declared.

    Attributes:
        bucket: the S3 bucket.
        key: the object key.
        size: the declared payload size in bytes (the size attribute's value).
        attribute: the size attribute's name (``ExtendedPayloadSize`` or the legacy one).
    """

    bucket: str
    key: str
    size: int
    attribute: str = SIZE_ATTRIBUTE


def size_attribute_of(attributes: Mapping[str, Any] | None) -> str | None:
    """The name of the size attribute present in ``attributes`` (boto3's shape), if any:
    its presence is what marks a message as a pointer, as in the Extended Client."""
    if not attributes:
        return None
    if SIZE_ATTRIBUTE in attributes:
        return SIZE_ATTRIBUTE
    if LEGACY_SIZE_ATTRIBUTE in attributes:
        return LEGACY_SIZE_ATTRIBUTE
    return None


def read_pointer(body: object, attributes: Mapping[str, Any], attribute: str) -> Pointer:
    """Parse the pointer of a message whose attributes hold the size ``attribute``.

    Accepts the two-element array written by the Extended Client libraries (either class
    name) and a bare ``{"s3BucketName": ..., "s3Key": ...}`` object.

    Raises:
        MalformedPointerError: the body or the size attribute is not in that format; the
            text never quotes the body.
    """
    size = _declared_size(attributes[attribute], attribute)
    if not isinstance(body, str) or len(body) > _MAX_POINTER_CHARS:
        raise MalformedPointerError(f"{attribute} is set but the body is not a pointer")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise MalformedPointerError(f"{attribute} is set but the body is not JSON") from err
    if type(data) is list:
        if len(data) != 2 or data[0] not in _CLASSES:
            raise MalformedPointerError(
                "pointer is not a [class, {s3BucketName, s3Key}] array of a known class"
            )
        data = data[1]
    if type(data) is not dict:
        raise MalformedPointerError("pointer has no {s3BucketName, s3Key} object")
    bucket, key = data.get("s3BucketName"), data.get("s3Key")
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise MalformedPointerError("pointer lacks a non-empty s3BucketName or s3Key")
    return Pointer(bucket, key, size, attribute)


def pointer_body(bucket: str, key: str) -> str:
    """The SQS body for a payload at ``bucket``/``key``, as the Extended Clients write it."""
    return json.dumps([POINTER_CLASS, {"s3BucketName": bucket, "s3Key": key}])


def _declared_size(value: object, attribute: str) -> int:
    if not isinstance(value, Mapping):
        raise MalformedPointerError(f"message attribute {attribute} is malformed")
    data_type = value.get("DataType")
    text = value.get("StringValue")
    if not isinstance(data_type, str) or not data_type.startswith("Number"):
        raise MalformedPointerError(f"message attribute {attribute} is not a Number")
    if not isinstance(text, str) or not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise MalformedPointerError(f"message attribute {attribute} is not a byte count")
    return int(text)
