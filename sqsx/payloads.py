"""Large payloads through S3 (the claim-check pattern), wire-compatible with AWS's Extended
Client libraries, as one hook for both runtimes.

``S3Payloads`` is a ``Hook``:

- ``before_send``: a message over the threshold goes to S3 and is sent as a pointer
  (``sqsx.pointer``), so every send path and the batch packing count the pointer's size;
- ``resolve_message``: before decoding, a pointer is replaced by its payload, and the
  pointer is kept in ``sqs_message["S3Payload"]``;
- ``after_delete``: once SQS confirmed the delete, the object is deleted too (default).

Only this module and ``sqsx.pointer`` know the format; no runtime has a special case for it.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal

from sqsx.codec import DEFAULT_MAX_MESSAGE_BYTES, is_object
from sqsx.exceptions import ConfigurationError, MessageTooLargeError
from sqsx.hooks import Hook
from sqsx.message import Message
from sqsx.payload_fetch import PayloadFetchError, S3Client, fetch_payload
from sqsx.pointer import (
    LEGACY_SIZE_ATTRIBUTE,
    POINTER_FIELD,
    SIZE_ATTRIBUTE,
    MalformedPointerError,
    PayloadError,
    PayloadSizeError,
    PayloadUnavailableError,
    Pointer,
    pointer_body,
    read_pointer,
    size_attribute_of,
)
from sqsx.sending import OutgoingMessage
from sqsx.sqs import error_code

__all__ = [
    "DEFAULT_MAX_OBJECT_BYTES",
    "MalformedPointerError",
    "PayloadError",
    "PayloadFetchError",
    "PayloadSizeError",
    "PayloadUnavailableError",
    "S3Payloads",
]

logger = logging.getLogger(__name__)

#: Largest object read by default: 64 MiB.
DEFAULT_MAX_OBJECT_BYTES = 64 * 1024 * 1024
#: S3's limit for one PutObject: 5 GiB.
_MAX_PUT_BYTES = 5 * 1024**3
_MAX_KEY_BYTES = 1024
_MAX_ATTRIBUTES = 10  # SQS's limit on message attributes per message
#: Server-side encryption for objects written: S3-managed keys or KMS.
ServerSideEncryption = Literal["AES256", "aws:kms", "aws:kms:dsse"]


class S3Payloads(Hook):
    """Offload large messages to S3 and read Extended Client pointers, in both runtimes.

    Args:
        s3_client: a boto3 ``s3`` client (thread-safe; shared by the worker's threads).
        bucket: the bucket objects are written to; pointers to it are read.
        threshold_bytes: offload a message whose size as SQS counts it (body plus message
            attributes, UTF-8 bytes) is over this many bytes; ``0`` offloads every
            message. Default ``None``: the queue's ``max_message_bytes`` (1 MiB unless set).
        key_prefix: prepended to every key written (``"sqsx/"``...); default ``""``.
        key_function: ``fn(outgoing) -> str``, the key after the prefix; default a random
            UUID. The whole key must be 1 to 1,024 UTF-8 bytes.
        sse: server-side encryption for objects written (``"AES256"``, ``"aws:kms"``,
            ``"aws:kms:dsse"``); default ``None``: the bucket's default encryption.
        kms_key_id: the KMS key for ``sse="aws:kms"`` (default: the AWS-managed key).
        delete_after: delete a message's object once SQS confirmed the message's delete
            (default ``True``). Set ``False`` when several queues read one object (SNS
            fan-out) and expire objects with a lifecycle rule instead.
        max_object_bytes: largest payload read or written, in bytes (default 64 MiB, 1 to
            5 GiB). A larger object is refused from its size before it is read.
        read_buckets: further buckets whose pointers are accepted (read, and deleted with
            ``delete_after``). A pointer to any other bucket is unprocessable, so a message
            cannot make the consumer read or delete objects elsewhere.
        legacy_attribute: write ``SQSLargePayloadSize`` (the 1.x libraries' name) instead of
            ``ExtendedPayloadSize``. Both are always read.

    Raises:
        ConfigurationError: a setting is out of bounds (a ``ValueError``).
    """

    def __init__(
        self,
        s3_client: Any,
        bucket: str,
        *,
        threshold_bytes: int | None = None,
        key_prefix: str = "",
        key_function: Callable[[OutgoingMessage], str] | None = None,
        sse: ServerSideEncryption | None = None,
        kms_key_id: str | None = None,
        delete_after: bool = True,
        max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES,
        read_buckets: Collection[str] = (),
        legacy_attribute: bool = False,
    ) -> None:
        for method in ("put_object", "get_object", "delete_object"):
            if not callable(getattr(s3_client, method, None)):
                raise TypeError(f"s3_client is not a boto3 S3 client: it lacks {method}")
        if not isinstance(bucket, str) or not bucket:
            raise ConfigurationError("bucket must be a non-empty string")
        if threshold_bytes is not None and not 0 <= threshold_bytes <= DEFAULT_MAX_MESSAGE_BYTES:
            raise ConfigurationError(
                f"threshold_bytes must be between 0 and {DEFAULT_MAX_MESSAGE_BYTES} bytes, "
                f"got {threshold_bytes}"
            )
        if not 1 <= max_object_bytes <= _MAX_PUT_BYTES:
            raise ConfigurationError(
                f"max_object_bytes must be between 1 and {_MAX_PUT_BYTES} bytes, "
                f"got {max_object_bytes}"
            )
        if sse not in (None, "AES256", "aws:kms", "aws:kms:dsse"):
            raise ConfigurationError(
                f"sse must be None, 'AES256', 'aws:kms' or 'aws:kms:dsse', got {sse!r}"
            )
        if kms_key_id is not None and sse not in ("aws:kms", "aws:kms:dsse"):
            raise ConfigurationError("kms_key_id needs sse='aws:kms' or 'aws:kms:dsse'")
        if len(key_prefix.encode("utf-8")) >= _MAX_KEY_BYTES:
            raise ConfigurationError(f"key_prefix must be under {_MAX_KEY_BYTES} bytes")
        self._s3: S3Client = s3_client
        self._bucket = bucket
        self._threshold = threshold_bytes
        self._queue_limit = DEFAULT_MAX_MESSAGE_BYTES
        self._prefix = key_prefix
        self._key_function = key_function or _random_key
        self._sse = sse
        self._kms_key_id = kms_key_id
        self._delete_after = delete_after
        self._max_object_bytes = max_object_bytes
        self._buckets = frozenset({bucket, *read_buckets})
        self._attribute = LEGACY_SIZE_ATTRIBUTE if legacy_attribute else SIZE_ATTRIBUTE

    @property
    def bucket(self) -> str:
        """The bucket objects are written to."""
        return self._bucket

    @property
    def threshold_bytes(self) -> int:
        """Messages over this many bytes are offloaded (``0``: every message)."""
        return self._queue_limit if self._threshold is None else self._threshold

    def for_queue(self, max_message_bytes: int) -> S3Payloads:
        """A copy whose default threshold is a queue's ``max_message_bytes`` (what
        ``Queue(..., payloads=...)`` installs)."""
        bound = copy.copy(self)
        bound._queue_limit = max_message_bytes
        return bound

    # -- sending ---------------------------------------------------------------------------

    def before_send(self, outgoing: OutgoingMessage) -> OutgoingMessage:
        """Put ``outgoing``'s body in S3 and return the pointer message, when it is over the
        threshold; else return it unchanged. A message that already is a pointer (it
        carries a size attribute) is sent as it is.

        Raises:
            MessageTooLargeError: the body is over ``max_object_bytes`` (a ``ValueError``).
            ValueError: the message already has 10 message attributes (SQS's limit; the
                pointer needs one more), or ``key_function`` returned an unusable key.
            botocore.exceptions.ClientError / BotoCoreError: PutObject failed; nothing
                was sent.
        """
        if size_attribute_of(outgoing.attributes) is not None:
            return outgoing
        if self._threshold != 0 and outgoing.size <= self.threshold_bytes:
            return outgoing
        if len(outgoing.attributes) >= _MAX_ATTRIBUTES:
            raise ValueError(
                f"cannot offload a message with {len(outgoing.attributes)} message attributes: "
                f"SQS allows {_MAX_ATTRIBUTES} and the S3 pointer needs one"
            )
        payload = outgoing.body.encode("utf-8")
        if len(payload) > self._max_object_bytes:
            raise MessageTooLargeError(len(payload), self._max_object_bytes)
        key = self._new_key(outgoing)
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": key, "Body": payload}
        if self._sse is not None:
            params["ServerSideEncryption"] = self._sse
        if self._kms_key_id is not None:
            params["SSEKMSKeyId"] = self._kms_key_id
        self._s3.put_object(**params)
        logger.debug(
            "payload of %d bytes put in S3 bucket=%s key=%s", len(payload), self._bucket, key
        )
        size = {"DataType": "Number", "StringValue": str(len(payload))}
        return dataclasses.replace(
            outgoing,
            body=pointer_body(self._bucket, key),
            attributes={**outgoing.attributes, self._attribute: size},
        )

    def _new_key(self, outgoing: OutgoingMessage) -> str:
        key = self._prefix + self._key_function(outgoing)
        if not isinstance(key, str) or not 1 <= len(key.encode("utf-8")) <= _MAX_KEY_BYTES:
            raise ValueError(
                f"S3 keys are 1 to {_MAX_KEY_BYTES} UTF-8 bytes; key_function gave {key!r}"
            )
        return key

    # -- receiving -------------------------------------------------------------------------

    def resolve_message(self, message: Message) -> Message:
        """Replace a pointer message's body with its payload from S3 (one GetObject);
        return any other message unchanged.

        The payload's message has ``Body`` = the payload (and ``MD5OfBody`` its MD5), the
        size attribute removed from ``MessageAttributes`` (the others stay), and
        ``S3Payload`` = ``{"Bucket", "Key", "Size", "Pointer"}`` (``Pointer``: the SQS body
        as received). ``MD5OfMessageAttributes`` stays SQS's, which counted the size
        attribute.

        Raises:
            PayloadError: unprocessable: a malformed pointer or size attribute, a bucket not
                accepted, no such key or access denied, an object over ``max_object_bytes``
                or whose size disagrees with the size attribute, a payload not UTF-8. Its
                text names the bucket and the key, never the payload.
            PayloadFetchError: S3 throttled, failed (5xx) or timed out: retried.
        """
        attributes = message.raw.get("MessageAttributes")
        name = size_attribute_of(attributes) if is_object(attributes) else None
        if name is None or not is_object(attributes):
            return message
        pointer = self._pointer(message, attributes, name)
        payload = fetch_payload(
            self._s3,
            pointer,
            message_id=message.message_id,
            max_object_bytes=self._max_object_bytes,
        )
        raw = dict(message.raw)
        raw["Body"] = payload
        if "MD5OfBody" in raw:  # what SQS would have said of the payload sent inline
            raw["MD5OfBody"] = hashlib.md5(
                payload.encode("utf-8"), usedforsecurity=False
            ).hexdigest()
        rest = {k: v for k, v in attributes.items() if k != name}
        if rest:
            raw["MessageAttributes"] = rest
        else:
            raw.pop("MessageAttributes", None)
        raw[POINTER_FIELD] = {
            "Bucket": pointer.bucket,
            "Key": pointer.key,
            "Size": pointer.size,
            "Pointer": message.raw.get("Body"),
        }
        return dataclasses.replace(message, raw=raw)

    def _pointer(self, message: Message, attributes: Mapping[str, Any], name: str) -> Pointer:
        # The core logs a refusal with the message id, the queue and this error's text.
        pointer = read_pointer(message.raw.get("Body"), attributes, name)
        if pointer.bucket not in self._buckets:
            raise MalformedPointerError(
                "pointer names a bucket not accepted (see read_buckets)",
                bucket=pointer.bucket,
                key=pointer.key,
            )
        return pointer

    # -- clean-up --------------------------------------------------------------------------

    def after_delete(self, message: Message, queue_url: str) -> None:
        """Delete the object of a pointer message SQS has deleted (with ``delete_after``).
        A failed DeleteObject is logged at WARNING and changes nothing else."""
        if not self._delete_after:
            return
        pointer = self._pointer_of(message)
        if pointer is None:
            return
        try:
            self._s3.delete_object(Bucket=pointer.bucket, Key=pointer.key)
        except Exception as err:
            logger.warning(
                "S3 payload not deleted (%s); the object stays message_id=%s bucket=%s key=%s "
                "queue_url=%s",
                error_code(err),
                message.message_id,
                pointer.bucket,
                pointer.key,
                queue_url,
            )
            return
        logger.debug(
            "S3 payload deleted message_id=%s bucket=%s key=%s queue_url=%s",
            message.message_id,
            pointer.bucket,
            pointer.key,
            queue_url,
        )

    def _pointer_of(self, message: Message) -> Pointer | None:
        """The accepted pointer of a message, resolved or as received; ``None`` if none."""
        field = message.raw.get(POINTER_FIELD)
        if is_object(field):
            bucket, key = field.get("Bucket"), field.get("Key")
            if isinstance(bucket, str) and isinstance(key, str) and bucket in self._buckets:
                return Pointer(bucket, key, int(field.get("Size") or 0))
            return None
        attributes = message.raw.get("MessageAttributes")
        name = size_attribute_of(attributes) if is_object(attributes) else None
        if name is None or not is_object(attributes):
            return None
        try:
            pointer = read_pointer(message.raw.get("Body"), attributes, name)
        except MalformedPointerError:
            return None
        return pointer if pointer.bucket in self._buckets else None


def _random_key(outgoing: OutgoingMessage) -> str:
    return str(uuid.uuid4())
