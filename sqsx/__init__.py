"""sqsx: a task processor for Amazon SQS, for long-lived workers and AWS Lambda."""

from typing import TYPE_CHECKING, Any

from sqsx.dispatch import Outcome, Verdict
from sqsx.exceptions import (
    ConfigurationError,
    HandlerResultError,
    MessageDecodeError,
    MessageTooLargeError,
    NoRetry,
    QueueUnavailableError,
    Retry,
    SqsxError,
    TaskArgumentsError,
    UnknownTaskError,
    UnprocessableMessageError,
)
from sqsx.hooks import Hook, Processing
from sqsx.message import Message
from sqsx.queue import BaseQueue, Queue, RawQueue
from sqsx.sending import RawMessage, SendResult, TaskMessage
from sqsx.stats import StatsSnapshot

if TYPE_CHECKING:
    from sqsx.options import ConsumeOptions

__version__ = "1.0.0.dev0"

__all__ = [  # noqa: RUF022 - grouped by purpose
    # queues
    "BaseQueue",
    "ConsumeOptions",
    "Queue",
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
]


def __getattr__(name: str) -> Any:
    # ConsumeOptions is a pydantic model: loaded on first use, not on ``import sqsx``.
    if name == "ConsumeOptions":
        from sqsx.options import ConsumeOptions

        return ConsumeOptions
    raise AttributeError(f"module 'sqsx' has no attribute {name!r}")
