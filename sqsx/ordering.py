"""FIFO order: which waiting messages may start, and what a failure holds back.

One rule for both runtimes (the worker's inbox and the Lambda runner), kept pure so that it
can be tested without threads or a server:

- a message group runs one message at a time, in the order received; other groups, and
  every message of a standard queue, run alongside;
- when a message of a group fails (it will be visible again in N seconds), the later
  messages of that group still waiting are given back unstarted, visible at once: on SQS
  the group stays locked while its failed message is in flight, so none is delivered
  before it;
- the group is remembered as blocked for those N seconds: a message of it received
  meanwhile (a server without SQS's group lock, LocalStack for one, hands them out) is
  held back again, hidden until 1 second after the failed message reappears. So order
  holds on any SQS implementation, not only on one that enforces the group lock.

Held-back messages are not hidden for N seconds at once because SQS's group lock counts
them as in flight too, which would delay the failed message itself until they reappear
(and moto then delivers the group out of order).

On a standard queue nothing is held back: ``pick`` takes the oldest waiting message.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqsx.backoff import MAX_VISIBILITY_TIMEOUT_SECONDS

__all__ = ["HOLD_BACK_MARGIN_SECONDS", "GroupGate", "Hold", "is_fifo"]

#: Messages received while their group is blocked reappear this many seconds after the
#: failed message of their group.
HOLD_BACK_MARGIN_SECONDS = 1

T = TypeVar("T")


def is_fifo(queue: object) -> bool:
    """True when ``queue`` (a queue URL, name or ARN) names a FIFO queue."""
    return isinstance(queue, str) and queue.endswith(".fifo")


@dataclass(slots=True)  # not frozen: built per message, and frozen costs 3x
class Hold(Generic[T]):
    """A message held back: make it visible again in ``seconds``, unstarted."""

    item: T
    seconds: int


class GroupGate(Generic[T]):
    """The FIFO rule over any kind of item (messages, Lambda jobs).

    Not thread-safe: the caller holds its own lock around every call.

    Args:
        fifo: apply group order; ``False`` for a standard queue (no group rule).
        group_of: the item's ``MessageGroupId`` (``None`` counts as one group).
        blocked: the blocked groups to share with other gates (the Lambda runtime keeps one
            across invocations); default: this gate's own.
    """

    def __init__(
        self,
        *,
        fifo: bool,
        group_of: Callable[[T], str | None],
        blocked: dict[str | None, float] | None = None,
    ) -> None:
        self.fifo = fifo
        self._group_of = group_of
        self._busy: set[str | None] = set()
        # group -> when its failed message is visible again (``time.monotonic()``)
        self._blocked: dict[str | None, float] = {} if blocked is None else blocked

    def admit(self, items: Iterable[T], waiting: deque[T], now: float) -> list[Hold[T]]:
        """Append newly received ``items`` to ``waiting``, except those of a group whose
        failed message is still hidden: those are returned, to be held back.

        Args:
            items: the items received, in order.
            waiting: the caller's queue of items not yet started.
            now: ``time.monotonic()``.
        """
        if not self.fifo or not self._blocked:
            waiting.extend(items)
            return []
        held: list[Hold[T]] = []
        for item in items:
            seconds = self._hold_seconds(self._group_of(item), now)
            if seconds is None:
                waiting.append(item)
            else:
                held.append(Hold(item, seconds))
        return held

    def pick(self, waiting: deque[T], allowed: Callable[[T], bool] | None = None) -> T | None:
        """Remove and return the first waiting item that may start now (its group is not
        running, and ``allowed(item)`` if given: a task's concurrency cap, say), marking
        its group as running; ``None`` when none may."""
        if not self.fifo and allowed is None:
            return waiting.popleft() if waiting else None
        for index, item in enumerate(waiting):
            group = self._group_of(item) if self.fifo else None
            if (not self.fifo or group not in self._busy) and (allowed is None or allowed(item)):
                del waiting[index]
                if self.fifo:
                    self._busy.add(group)
                return item
        return None

    def finish(
        self, item: T, retry_after: int | None, waiting: deque[T], now: float
    ) -> list[Hold[T]]:
        """Mark ``item`` finished. If it failed (``retry_after`` is the seconds until it is
        visible again; ``None`` when it was deleted), block its group until then, remove the
        later items of its group from ``waiting`` and return them, to be given back (with
        0 seconds: see the module docs)."""
        if not self.fifo:
            return []
        group = self._group_of(item)
        self._busy.discard(group)
        if retry_after is None:
            return []
        self._blocked[group] = now + retry_after
        self._forget_expired(now)
        held = [Hold(i, 0) for i in waiting if self._group_of(i) == group]
        if held:
            kept = [i for i in waiting if self._group_of(i) != group]
            waiting.clear()
            waiting.extend(kept)
        return held

    def _hold_seconds(self, group: str | None, now: float) -> int | None:
        until = self._blocked.get(group)
        if until is None:
            return None
        if until <= now:
            del self._blocked[group]
            return None
        return _held_for(int(until - now + 0.999))

    def _forget_expired(self, now: float) -> None:
        if len(self._blocked) > 64:
            for group in [g for g, t in self._blocked.items() if t <= now]:
                del self._blocked[group]


def _held_for(seconds_until_return: int) -> int:
    return min(seconds_until_return + HOLD_BACK_MARGIN_SECONDS, MAX_VISIBILITY_TIMEOUT_SECONDS)
