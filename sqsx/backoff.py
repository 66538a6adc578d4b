"""The backoff policy: how long a failed message stays invisible before its next try."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqsx.exceptions import ConfigurationError

__all__ = ["MAX_VISIBILITY_TIMEOUT_SECONDS", "BackoffPolicy", "backoff_seconds"]

#: SQS's upper bound for a visibility timeout: 12 hours.
MAX_VISIBILITY_TIMEOUT_SECONDS = 43_200

# 2 ** 16 * 1 s is already above 43,200 s: larger exponents only cost big-integer work.
_MAX_EXPONENT = 16


def backoff_seconds(receive_count: int, min_backoff_seconds: int, max_backoff_seconds: int) -> int:
    """Seconds to hide a message that failed on its ``receive_count``-th delivery.

    ``min(min_backoff * 2 ** (receive_count - 1), max_backoff, 43200)``; a receive count
    below 1 (unknown) counts as 1.
    """
    retries = min(max(receive_count - 1, 0), _MAX_EXPONENT)
    delay: int = min_backoff_seconds * 2**retries
    return min(delay, max_backoff_seconds, MAX_VISIBILITY_TIMEOUT_SECONDS)


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Exponential backoff between ``min_seconds`` and ``max_seconds`` (both in seconds)."""

    min_seconds: int = 30
    max_seconds: int = 900

    def __post_init__(self) -> None:
        if not 0 <= self.min_seconds <= self.max_seconds <= MAX_VISIBILITY_TIMEOUT_SECONDS:
            raise ConfigurationError(
                "backoff needs 0 <= min_seconds <= max_seconds <= "
                f"{MAX_VISIBILITY_TIMEOUT_SECONDS}, got min_seconds={self.min_seconds}, "
                f"max_seconds={self.max_seconds}"
            )

    def delay(self, receive_count: int) -> int:
        """Seconds of invisibility after a failure on the ``receive_count``-th delivery."""
        return backoff_seconds(receive_count, self.min_seconds, self.max_seconds)

    def overridden(self, min_seconds: int | None, max_seconds: int | None) -> BackoffPolicy:
        """This policy with the bounds a ``Retry`` gave (``None`` keeps the queue's value).

        A ``Retry`` whose bounds cross (min above max) is clamped rather than refused: the
        message must still get a delay, so min is lowered to max.
        """
        low = self.min_seconds if min_seconds is None else _whole_seconds(min_seconds)
        high = self.max_seconds if max_seconds is None else _whole_seconds(max_seconds)
        high = min(high, MAX_VISIBILITY_TIMEOUT_SECONDS)
        return BackoffPolicy(min(low, high), high)


def _whole_seconds(value: float) -> int:
    """SQS takes whole seconds: a fractional ``Retry`` bound is rounded up, never below 0."""
    return max(math.ceil(value), 0)
