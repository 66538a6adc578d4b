"""What an SQS error means: its code, and whether retrying can fix it.

One classification for every caller (receivers, flushers, the CLI): missing queues,
credentials and access (permanent), throttling, 5xx and network errors (transient).
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)

__all__ = [
    "describe_error",
    "error_code",
    "is_bad_credentials",
    "is_missing_queue",
    "is_permanent",
    "is_sqs_error",
    "is_transient",
]

# Codes that say the queue does not exist.
_MISSING_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "InvalidAddress"}
)
# Codes that say the credentials are missing, wrong or expired (AWS's common errors:
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/CommonErrors.html).
_CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "InvalidAccessKeyId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSecurity",
    }
)
_ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "KMS.AccessDeniedException"}
)
# Codes that retrying cannot fix: the queue is gone or we may not touch it.
_PERMANENT_CODES = (
    _MISSING_QUEUE_CODES | _CREDENTIAL_CODES | _ACCESS_DENIED_CODES | {"KMS.DisabledException"}
)


def error_code(err: BaseException) -> str:
    """The SQS error code of ``err``, or its class name for network errors."""
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code", "ClientError"))
    return type(err).__name__


def is_missing_queue(err: BaseException) -> bool:
    """True when SQS says the queue does not exist."""
    return isinstance(err, ClientError) and error_code(err) in _MISSING_QUEUE_CODES


def is_bad_credentials(err: BaseException) -> bool:
    """True when there are no credentials, or SQS refused them (invalid, expired)."""
    if isinstance(err, NoCredentialsError | PartialCredentialsError):
        return True
    return isinstance(err, ClientError) and error_code(err) in _CREDENTIAL_CODES


def is_permanent(err: BaseException) -> bool:
    """True when retrying the call that raised ``err`` cannot succeed: no such queue, no
    or refused credentials, access denied."""
    if is_bad_credentials(err):
        return True
    return isinstance(err, ClientError) and error_code(err) in _PERMANENT_CODES


def describe_error(err: BaseException) -> str:
    """One line for a log or the CLI: the error code, what it means and, for an error
    retrying cannot fix, what to do; for a network error, the endpoint it could not reach."""
    code = error_code(err)
    if isinstance(err, NoCredentialsError | PartialCredentialsError):
        return (
            f"{code}: no AWS credentials found; set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or run with an IAM role (a local SQS needs its endpoint URL)"
        )
    if is_bad_credentials(err):
        return (
            f"{code}: SQS refused the credentials (invalid or expired); renew them "
            "(e.g. aws sso login, a new session token) or check AWS_ACCESS_KEY_ID"
        )
    if isinstance(err, ClientError):
        detail = str(err.response.get("Error", {}).get("Message", "")).strip()
        if code in _ACCESS_DENIED_CODES:
            return f"{code}: {detail or 'access denied'}; grant the role the SQS actions it needs"
        if code in _MISSING_QUEUE_CODES:
            return f"{code}: the queue does not exist; check the URL and the region"
        return f"{code}: {detail}" if detail else code
    endpoint = getattr(err, "kwargs", {}).get("endpoint_url")
    return f"{code}: cannot reach {endpoint}" if endpoint else f"{code}: {err}"


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
