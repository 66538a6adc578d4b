"""Reading one payload from S3, bounded: size checks before the body is read, and S3's
errors sorted into transient (retried with backoff) and permanent (unprocessable)."""

from __future__ import annotations

import logging
from typing import Any, NoReturn, Protocol

from botocore.exceptions import ClientError

from sqsx.exceptions import SqsxError
from sqsx.pointer import PayloadError, PayloadSizeError, PayloadUnavailableError, Pointer
from sqsx.sqs import error_code

__all__ = ["PayloadFetchError", "S3Client", "fetch_payload"]

logger = logging.getLogger(__name__)

# S3 answers that retrying cannot fix: the object or bucket is gone, or we may not read it
# (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html). Anything else
# (SlowDown, InternalError, 5xx, timeouts, unknown codes) is retried: a retry never loses
# a message, while an unprocessable one may be deleted (poison_policy="delete").
_PERMANENT_CODES = frozenset(
    {
        "NoSuchKey",
        "NoSuchBucket",
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidObjectState",
        "KMS.AccessDeniedException",
        "KMS.DisabledException",
        "404",
        "403",
    }
)


class PayloadFetchError(SqsxError):
    """S3 could not serve a payload now (throttling, 5xx, a timeout): the message is
    retried with its backoff. Its text names the bucket, the key and S3's error code."""


class S3Client(Protocol):
    """The boto3 S3 client methods sqsx uses (a boto3 ``s3`` client satisfies it)."""

    def put_object(self, **kwargs: Any) -> Any: ...
    def get_object(self, **kwargs: Any) -> Any: ...
    def delete_object(self, **kwargs: Any) -> Any: ...


def fetch_payload(s3: S3Client, pointer: Pointer, *, message_id: str, max_object_bytes: int) -> str:
    """The payload ``pointer`` names, as text: one GetObject, at most ``max_object_bytes``
    read. A size over the maximum (declared, or the object's ``ContentLength``) is refused
    before the body is read.

    Raises:
        PayloadError: unprocessable (``PayloadUnavailableError``: no such key or bucket,
            access denied; ``PayloadSizeError``: too large, or not the declared size; or a
            payload that is not UTF-8); the core logs it with the message id.
        PayloadFetchError: transient (throttled, 5xx, timed out, cut short), logged at INFO
            with the message id, bucket and key.
    """
    if pointer.size > max_object_bytes:
        _refuse(pointer, f"declares {pointer.size} bytes", max_object_bytes)
    try:
        response = s3.get_object(Bucket=pointer.bucket, Key=pointer.key)
    except Exception as err:
        raise _fetch_error(message_id, pointer, err) from err
    stream = response["Body"]
    try:
        length = response.get("ContentLength")
        if not isinstance(length, int) or length > max_object_bytes:
            _refuse(pointer, f"is {length} bytes", max_object_bytes)
        if length != pointer.size:
            _refuse(pointer, f"is {length} bytes, {pointer.attribute} says {pointer.size}")
        try:
            data = stream.read(length + 1)
        except Exception as err:
            raise _fetch_error(message_id, pointer, err) from err
    finally:
        stream.close()
    if len(data) != length:
        raise _fetch_error(message_id, pointer, None, f"read {len(data)} of {length} bytes")
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as err:
        raise PayloadError(
            "S3 payload is not UTF-8 text", bucket=pointer.bucket, key=pointer.key
        ) from err


def _refuse(pointer: Pointer, what: str, limit: int | None = None) -> NoReturn:
    reason = f"object {what}" + ("" if limit is None else f", over max_object_bytes={limit}")
    raise PayloadSizeError(f"S3 payload {reason}", bucket=pointer.bucket, key=pointer.key)


def _fetch_error(
    message_id: str, pointer: Pointer, err: BaseException | None, what: str = ""
) -> Exception:
    code = error_code(err) if err is not None else "IncompleteRead"
    status = 0
    if isinstance(err, ClientError):
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in _PERMANENT_CODES or status in (403, 404):
        return PayloadUnavailableError(
            f"S3 GetObject refused: {code}", bucket=pointer.bucket, key=pointer.key
        )
    logger.info(
        "S3 payload not read now (%s%s), the message is retried message_id=%s bucket=%s key=%s",
        code,
        f": {what}" if what else "",
        message_id,
        pointer.bucket,
        pointer.key,
    )
    return PayloadFetchError(
        f"S3 GetObject failed: {code} (bucket={pointer.bucket} key={pointer.key})"
    )
