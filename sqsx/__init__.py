"""sqsx: a task processor for Amazon SQS, for long-lived workers and AWS Lambda."""

from sqsx.dispatch import Outcome, Verdict
from sqsx.exceptions import (
    MessageTooLargeError,
    NoRetry,
    QueueUnavailableError,
    Retry,
    SqsxError,
    TaskArgumentsError,
)
from sqsx.options import ConsumeOptions
from sqsx.queue import BaseQueue, Queue, RawQueue
from sqsx.sending import RawMessage, SendResult, TaskMessage
from sqsx.stats import StatsSnapshot

__version__ = "1.0.0.dev0"

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
