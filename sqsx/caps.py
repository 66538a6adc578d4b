"""Concurrency caps: at most N messages of a task run at once, without holding threads.

A task registered with ``max_concurrency=N`` runs at most N messages at a time in one
worker process (or one Lambda invocation). Its other messages wait in the runtime's queue
of received messages, kept invisible by the heartbeat, while every thread stays free for
other tasks; they count against the worker's room only up to a bound, so a backlog of one
capped task cannot starve the others. A message that has waited for its cap for
``CAP_WAIT_LIMIT_SECONDS`` is released (visible again at once) rather than held longer.

Not thread-safe: the caller holds its own lock around every call.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping

from sqsx.codec import TASK_NAME_ATTRIBUTE
from sqsx.message import Message

__all__ = ["CAP_WAIT_LIMIT_SECONDS", "ConcurrencyCaps", "task_name_of"]

#: Seconds a message may wait for its task's concurrency cap before it is released.
CAP_WAIT_LIMIT_SECONDS = 600.0


def task_name_of(message: Message) -> str | None:
    """The ``TaskName`` attribute of ``message``, read without decoding the body."""
    attributes = message.raw.get("MessageAttributes")
    attribute = attributes.get(TASK_NAME_ATTRIBUTE) if isinstance(attributes, Mapping) else None
    value = attribute.get("StringValue") if isinstance(attribute, Mapping) else None
    return value if isinstance(value, str) else None


class ConcurrencyCaps:
    """Running counts of capped tasks.

    Args:
        caps: the current task -> cap map (read on every call, so caps added while
            consuming apply at once).
    """

    def __init__(self, caps: Callable[[], Mapping[str, int]]) -> None:
        self._caps = caps
        self._running: Counter[str] = Counter()
        self._since: dict[int, float] = {}  # id(message) -> when it started waiting

    @property
    def active(self) -> bool:
        """True when some task has a cap."""
        return bool(self._caps())

    def _cap(self, message: Message) -> tuple[str, int] | None:
        caps = self._caps()
        if not caps:
            return None
        task = task_name_of(message)
        cap = caps.get(task) if task is not None else None
        return None if cap is None or task is None else (task, cap)

    def allowed(self, message: Message) -> bool:
        """True when ``message`` may start now."""
        capped = self._cap(message)
        return capped is None or self._running[capped[0]] < capped[1]

    def waiting(self, messages: Iterable[Message], now: float | None = None) -> None:
        """Note when capped ``messages`` started waiting."""
        if not self.active:
            return
        now = time.monotonic() if now is None else now
        for message in messages:
            if self._cap(message) is not None:
                self._since.setdefault(id(message), now)

    def started(self, message: Message) -> None:
        capped = self._cap(message)
        self._since.pop(id(message), None)
        if capped is not None:
            self._running[capped[0]] += 1

    def finished(self, message: Message) -> None:
        capped = self._cap(message)
        if capped is not None and self._running[capped[0]] > 0:
            self._running[capped[0]] -= 1

    def blocked(self, waiting: Iterable[Message]) -> int:
        """How many of ``waiting`` their caps keep from starting now."""
        caps = self._caps()
        if not caps:
            return 0
        queued: Counter[str] = Counter()
        for message in waiting:
            task = task_name_of(message)
            if task is not None and task in caps:
                queued[task] += 1
        return sum(
            max(count - max(caps[task] - self._running[task], 0), 0)
            for task, count in queued.items()
        )

    def overdue(self, waiting: deque[Message], now: float) -> list[Message]:
        """Remove from ``waiting`` and return the messages that have waited for their cap
        for ``CAP_WAIT_LIMIT_SECONDS``."""
        if not self._since:
            return []
        late = {key for key, since in self._since.items() if now - since >= CAP_WAIT_LIMIT_SECONDS}
        if not late:
            return []
        released = [m for m in waiting if id(m) in late]
        kept = [m for m in waiting if id(m) not in late]
        waiting.clear()
        waiting.extend(kept)
        for key in late:
            del self._since[key]
        return released

    def forget(self, messages: Iterable[Message]) -> None:
        """Stop tracking ``messages`` (given back unstarted)."""
        for message in messages:
            self._since.pop(id(message), None)
