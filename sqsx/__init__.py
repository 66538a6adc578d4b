"""sqsx: a task processor for Amazon SQS, for long-lived workers and AWS Lambda."""

from typing import TYPE_CHECKING, Any

from sqsx.dispatch import Outcome, Verdict
from sqsx.exceptions import (
    ConfigurationError,
    HandlerResultError,
    HandlerSignatureError,
    InvalidMessageError,
    MessageDecodeError,
    MessageTooLargeError,
    NoRetry,
    QueueUnavailableError,
    Retry,
    SqsxError,
    TaskArgumentsError,
    TimeLimitExceeded,
    UnknownTaskError,
    UnprocessableMessageError,
    WrongTypeError,
)
from sqsx.group import QueueGroup
from sqsx.hooks import Hook, Processing
from sqsx.message import Message
from sqsx.queue import BaseQueue, Queue, RawQueue
from sqsx.sending import RawMessage, SendResult, TaskMessage
from sqsx.stats import StatsSnapshot

if TYPE_CHECKING:
    from sqsx.options import ConsumeOptions

__version__ = "1.0.0"

__all__ = [  # noqa: RUF022 - grouped by purpose
    # queues
    "BaseQueue",
    "ConsumeOptions",
    "Queue",
    "QueueGroup",
    "RawQueue",
    # sending
    "RawMessage",
    "SendResult",
    "TaskMessage",
    # processing: what a message is, what became of it, and the hooks that see it
    "Hook",
    "Message",
    "Outcome",
    "Processing",
    "StatsSnapshot",
    "Verdict",
    # control flow a handler may raise
    "NoRetry",
    "Retry",
    # errors: every one is a SqsxError
    "ConfigurationError",
    "HandlerResultError",
    "MessageDecodeError",
    "MessageTooLargeError",
    "QueueUnavailableError",
    "SqsxError",
    "TaskArgumentsError",
    "UnknownTaskError",
    "UnprocessableMessageError",
    "WrongTypeError",
    "HandlerSignatureError",
    "InvalidMessageError",
    # control flow sqsx raises inside a handler past its time limit
    "TimeLimitExceeded",
]


def __getattr__(name: str) -> Any:
    # ConsumeOptions is a pydantic model: loaded on first use, not on ``import sqsx``.
    if name == "ConsumeOptions":
        from sqsx.options import ConsumeOptions

        return ConsumeOptions
    raise AttributeError(f"module 'sqsx' has no attribute {name!r}")
