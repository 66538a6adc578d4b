"""Errors raised by sqsx, and the two control-flow signals a handler may raise.

``SqsxError`` is the root of every error sqsx raises itself. ``Retry`` and ``NoRetry``
are not errors: a handler raises them to choose what happens to its message.
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "HandlerResultError",
    "MessageDecodeError",
    "MessageTooLargeError",
    "NoRetry",
    "QueueUnavailableError",
    "Retry",
    "SqsxError",
    "TaskArgumentsError",
    "TimeLimitExceeded",
    "UnknownTaskError",
    "UnprocessableMessageError",
]


class SqsxError(Exception):
    """Root of every error raised by sqsx."""


class MessageTooLargeError(SqsxError, ValueError):
    """A message is larger than the queue's size limit (a ``ValueError``, as in sqsx 0.7)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"message is {size} bytes (body plus message attributes), "
            f"over the limit of {limit} bytes"
        )
        self.size = size
        self.limit = limit


class UnprocessableMessageError(SqsxError):
    """A received message that no handler can ever process as it stands.

    Such a message is retried with backoff until the queue's redrive policy moves it to a
    dead-letter queue, or deleted at once when the queue's ``poison_policy`` is ``"delete"``.
    """


class MessageDecodeError(UnprocessableMessageError):
    """The body or the ``TaskName`` attribute of a message is not in sqsx's wire format."""


class UnknownTaskError(UnprocessableMessageError):
    """No handler is registered for the message's task name."""


class TaskArgumentsError(UnprocessableMessageError, ValueError):
    """A task's kwargs do not fit its handler's signature (or fail its type annotations)."""


class HandlerResultError(SqsxError):
    """A handler returned something sqsx cannot finish for it (a generator: its body never
    ran). The message is retried with backoff, as for any handler error."""


class ConfigurationError(SqsxError, ValueError):
    """A setting or option is out of its bounds; the message names it and the bound."""


class QueueUnavailableError(SqsxError):
    """SQS answered with an error that retrying cannot fix (no such queue, access denied)."""


class Retry(Exception):
    """Raised by a handler to retry its message with a backoff of its own choosing.

    The message becomes visible again after
    ``min(min_backoff_seconds * 2 ** (receive_count - 1), max_backoff_seconds)`` seconds.

    Args:
        min_backoff_seconds: first delay in seconds; ``None`` uses the queue's value.
            ``0`` is honoured (the message comes back at once).
        max_backoff_seconds: cap on the delay in seconds; ``None`` uses the queue's value.
            Never above 43200 (12 hours, SQS's limit).
    """

    def __init__(
        self,
        min_backoff_seconds: int | None = None,
        max_backoff_seconds: int | None = None,
    ) -> None:
        super().__init__(min_backoff_seconds, max_backoff_seconds)
        self.min_backoff_seconds = min_backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds


class TimeLimitExceeded(BaseException):
    """Raised inside a handler's thread when it runs past its ``time_limit``.

    A ``BaseException``, so that the usual ``except Exception`` in a handler does not
    swallow it. Its message gets the ``TIMED_OUT`` verdict and the queue's backoff.

    It is raised as a class, so it carries no arguments; the ``TIMED_OUT`` log line and
    ``Outcome.reason`` name the limit.
    """


class NoRetry(Exception):
    """Raised by a handler to delete its message without retrying it (logged at INFO)."""
