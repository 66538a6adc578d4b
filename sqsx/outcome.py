"""What the core decides for each message: a ``Verdict`` and an ``Outcome``."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Outcome", "Verdict"]


class Verdict(enum.Enum):
    """Why a message got its outcome."""

    SUCCEEDED = "succeeded"
    NO_RETRY = "no_retry"
    RETRIED = "retried"
    UNPROCESSABLE = "unprocessable"
    #: The handler ran past its time limit (the message gets its backoff).
    TIMED_OUT = "timed_out"


@dataclass(slots=True)  # not frozen: built per message, and frozen costs 3x
class Outcome:
    """The fate of one message.

    Attributes:
        verdict: why.
        retry_after: ``None`` to delete the message, else the seconds it stays invisible
            before SQS delivers it again.
        reason: a short text for logs and tests; never the message body.
        handler_seconds: how long the handler ran (0 when it did not run).
        late: the handler was abandoned past its time limit and this outcome was acted on
            then; what its thread returns afterwards carries ``late=True`` and is ignored.
        error: the exception a handler (or a hook preparing the message) raised, for
            hooks that record it (a trace event); ``None`` for ``Retry`` and ``NoRetry``.
    """

    verdict: Verdict
    retry_after: int | None
    reason: str = ""
    handler_seconds: float = 0.0
    late: bool = False
    error: BaseException | None = field(default=None, compare=False, repr=False)

    @classmethod
    def succeeded(cls, handler_seconds: float) -> Outcome:
        """The outcome of a handler that returned: delete the message."""
        return cls(Verdict.SUCCEEDED, None, "", handler_seconds)

    @property
    def delete(self) -> bool:
        """True when the message is done with and must be deleted."""
        return self.retry_after is None
