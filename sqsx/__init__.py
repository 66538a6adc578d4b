"""sqsx: a task processor for Amazon SQS, for long-lived workers and AWS Lambda."""

from typing import TYPE_CHECKING, Any

from sqsx.dispatch import Outcome, Verdict
from sqsx.exceptions import (
    MessageTooLargeError,
    NoRetry,
    QueueUnavailableError,
    Retry,
    SqsxError,
    TaskArgumentsError,
)
from sqsx.queue import BaseQueue, Queue, RawQueue
from sqsx.sending import RawMessage, SendResult, TaskMessage
from sqsx.stats import StatsSnapshot

if TYPE_CHECKING:
    from sqsx.options import ConsumeOptions

__version__ = "1.0.0"

__all__ = [
    "BaseQueue",
    "ConsumeOptions",
    "MessageTooLargeError",
    "NoRetry",
    "Outcome",
    "Queue",
    "QueueUnavailableError",
    "RawMessage",
    "RawQueue",
    "Retry",
    "SendResult",
    "SqsxError",
    "StatsSnapshot",
    "TaskArgumentsError",
    "TaskMessage",
    "Verdict",
]


def __getattr__(name: str) -> Any:
    # ConsumeOptions is a pydantic model: loaded on first use, not on ``import sqsx``.
    if name == "ConsumeOptions":
        from sqsx.options import ConsumeOptions

        return ConsumeOptions
    raise AttributeError(f"module 'sqsx' has no attribute {name!r}")
