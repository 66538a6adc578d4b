"""Which queue's message a shared handler thread runs next: weighted fair sharing.

When one worker consumes several queues (``sqsx.group.QueueGroup``), its handler threads
are shared, and each free thread asks this policy for the order in which to try the
queues. The policy is start-time fair queueing, a smooth form of weighted round-robin:

- each queue has a whole-number weight (default 1) and a virtual time, the start tag of
  its next message; starting one of its messages moves it on by ``1 / weight``;
- a free thread tries the queues by start tag, smallest first (ties: the order the
  queues were given in), and runs the first message it can take;
- a queue that had nothing to run earns no credit for it: its next start tag is never
  below the virtual clock (the start tag of the message started last), so a queue that was
  quiet, then gets a message, is served at the next free thread, without a burst after.

So while every queue has work, queue ``i`` runs ``weight_i / sum(weights)`` of the messages
(weights 3 and 1: three of every four starts); a flooded queue cannot starve another, and a
message on a quiet queue waits for at most one free handler thread. Messages a queue cannot
start now (a FIFO group busy, a task at its cap) are skipped and cost it nothing.

Thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from sqsx.exceptions import ConfigurationError

__all__ = ["MAX_WEIGHT", "WeightedFairness", "checked_weights"]

#: The largest weight a queue may have.
MAX_WEIGHT = 1000


def checked_weights(weights: Sequence[int] | None, count: int) -> tuple[int, ...]:
    """``weights`` (one per queue, each 1 to ``MAX_WEIGHT``), or all 1 for ``None``.

    Raises:
        ConfigurationError: the count differs from ``count`` or a weight is out of bounds.
    """
    if weights is None:
        return (1,) * count
    weights = tuple(weights)
    if len(weights) != count:
        raise ConfigurationError(
            f"weights: give one weight per queue ({count}), got {len(weights)}"
        )
    for weight in weights:
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
            raise ConfigurationError(
                f"weights: each weight must be a whole number from 1 to {MAX_WEIGHT}, "
                f"got {weight!r}"
            )
    return weights


class WeightedFairness:
    """The start tags of ``len(weights)`` queues.

    Args:
        weights: one positive weight per queue (see ``checked_weights``).
    """

    def __init__(self, weights: Sequence[int]) -> None:
        self._steps = [1.0 / weight for weight in weights]
        self._next = [0.0] * len(self._steps)  # each queue's next start tag
        self._clock = 0.0
        self._lock = threading.Lock()

    def order(self) -> list[int]:
        """The queues' indexes in the order a free thread should try them."""
        with self._lock:
            clock, tags = self._clock, self._next
            return sorted(range(len(tags)), key=lambda i: (max(tags[i], clock), i))

    def started(self, index: int) -> None:
        """A message of queue ``index`` started."""
        with self._lock:
            start = max(self._next[index], self._clock)
            self._clock = start
            self._next[index] = start + self._steps[index]
