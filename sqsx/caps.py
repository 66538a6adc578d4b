"""Concurrency caps: at most N messages of a task run at once, without holding threads.

A task registered with ``max_concurrency=N`` runs at most N messages at a time in one
worker process (or one Lambda invocation). Its other messages wait in the runtime's queue
of received messages, kept invisible by the heartbeat, while every thread stays free for
other tasks. A message that has waited for its cap for ``CAP_WAIT_LIMIT_SECONDS`` is
released (visible again at once) rather than held longer.

SQS cannot be asked for "anything but task X", so when a capped task arrives faster than
its cap runs it, its backlog would fill the worker's room and starve the other tasks. The
polling worker therefore keeps at most ``keep_waiting(cap, mean)`` waiting messages of a
capped task (twice its cap, a receive's worth, and two seconds of the cap's work, at most
``MAX_LINE``); what it receives of that task past that is given back to SQS unstarted
(``overflow``), visible again when the cap should have room for it: the messages given
back are spaced at the pace the cap runs the task (its measured mean run time / the cap),
after the line the worker keeps, each within ``[1 s, OVERFLOW_DELAY_CAP_SECONDS]`` (1 s
until one of its messages has finished: by the time they are back, the pace is known).
Messages given back before are kept in preference to fresh ones. A give-back is a
receive, and counts against a redrive policy's ``maxReceiveCount``: a message is only
given back while it has at least two receives to spare (one to run, one to retry);
otherwise it is held, as on a FIFO queue, where order forbids giving back.

Not thread-safe: the caller holds its own lock around every call.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence

from sqsx.codec import TASK_NAME_ATTRIBUTE
from sqsx.message import Message
from sqsx.ordering import Hold

__all__ = [
    "CAP_WAIT_LIMIT_SECONDS",
    "LINE_SECONDS",
    "MAX_LINE",
    "OVERFLOW_DELAY_CAP_SECONDS",
    "ConcurrencyCaps",
    "keep_waiting",
    "task_name_of",
]

logger = logging.getLogger(__name__)

#: Seconds a message may wait for its task's concurrency cap before it is released.
CAP_WAIT_LIMIT_SECONDS = 600.0
#: The longest a message given back past its task's cap stays invisible, in seconds.
OVERFLOW_DELAY_CAP_SECONDS = 900
#: Seconds of a capped task's work the worker keeps waiting (see ``keep_waiting``).
LINE_SECONDS = 2.0
#: The most waiting messages of one capped task the worker keeps (unless twice its cap).
MAX_LINE = 100
_RECEIVE_BATCH = 10  # what one ReceiveMessage brings at most
_UNMEASURED_SECONDS = 1  # the give-back's delay until one of the task's messages finished
_WEIGHT = 0.2  # of the newest run time in a task's mean
_LOG_EVERY_SECONDS = 60.0  # one line per task at most this often about give-backs


def keep_waiting(cap: int, mean_seconds: float | None = None) -> int:
    """How many waiting messages of a task capped at ``cap`` (whose runs take
    ``mean_seconds``, if known) the worker holds: twice the cap, a receive's worth, and
    ``LINE_SECONDS`` of the cap's work (visibility is set in whole seconds, so given-back
    messages come back a second's worth at a time), at most ``MAX_LINE``."""
    line = max(2 * cap, _RECEIVE_BATCH)
    if mean_seconds:
        line = max(line, math.ceil(LINE_SECONDS * cap / mean_seconds))
    return min(line, max(MAX_LINE, 2 * cap))


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
        self._started: dict[int, float] = {}  # id(message) -> when it started running
        self._mean: dict[str, float] = {}  # task -> mean run time (seconds)
        self._given: dict[str, tuple[float, int]] = {}  # task -> (last logged, given since)
        self._next_back: dict[str, float] = {}  # task -> when its last give-back is due
        #: The queue's redrive ``maxReceiveCount``: ``0`` none (give back freely), ``None``
        #: not known (never give back: it could push a message into the dead-letter queue).
        self.max_receive_count: int | None = None

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
            self._started[id(message)] = time.monotonic()

    def finished(self, message: Message) -> None:
        capped = self._cap(message)
        if capped is not None and self._running[capped[0]] > 0:
            self._running[capped[0]] -= 1
        began = self._started.pop(id(message), None)
        if capped is not None and began is not None:
            took, mean = time.monotonic() - began, self._mean.get(capped[0])
            self._mean[capped[0]] = took if mean is None else mean + _WEIGHT * (took - mean)

    def overflow(self, arrived: Sequence[Message], waiting: deque[Message]) -> list[Hold[Message]]:
        """Remove from ``waiting`` and return, each with the seconds it should stay
        invisible, the ``arrived`` messages of capped tasks past ``keep_waiting`` (see the
        module docstring)."""
        caps = self._caps()
        limit = self.max_receive_count
        if not caps or limit is None:
            return []
        queued: Counter[str] = Counter()
        for message in waiting:
            task = task_name_of(message)
            if task is not None and task in caps:
                queued[task] += 1
        keep = {t: keep_waiting(caps[t], self._mean.get(t)) for t in queued}
        over = {t: n - keep[t] for t, n in queued.items() if n > keep[t]}
        if not over:
            return []
        chosen: list[tuple[str, Message]] = []
        # the freshest go back first (the newest of them): one given back before keeps its turn
        for message in sorted(reversed(arrived), key=lambda m: m.receive_count):
            task = task_name_of(message)
            if task is None or over.get(task, 0) <= 0:
                continue
            if limit and message.receive_count + 2 > limit:
                continue  # no receive to spare: held, however long the line
            over[task] -= 1
            queued[task] -= 1
            chosen.append((task, message))
        order = {id(m): i for i, m in enumerate(arrived)}
        chosen.sort(key=lambda pair: order[id(pair[1])])  # they come back in arrival order
        now = time.monotonic()
        back = [Hold(m, self._comeback(t, caps[t], queued[t], now)) for t, m in chosen]
        if back:
            self._tell(Counter(t for t, _ in chosen), queued, max(h.seconds for h in back))
            gone = {id(h.item) for h in back}
            kept = [m for m in waiting if id(m) not in gone]
            waiting.clear()
            waiting.extend(kept)
            self.forget(h.item for h in back)
        return back

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

    def _comeback(self, task: str, cap: int, line: int, now: float) -> int:
        """Seconds a message of ``task`` given back now stays invisible: those given back
        come back one after another at the pace the cap runs them, after the ``line``
        waiting in the worker."""
        mean = self._mean.get(task)
        if mean is None:  # back soon, and spread once a run time is known
            return _UNMEASURED_SECONDS
        pace = mean / cap
        due = max(self._next_back.get(task, 0.0), now + line * pace) + pace
        seconds = min(max(math.ceil(due - now), 1), OVERFLOW_DELAY_CAP_SECONDS)
        self._next_back[task] = min(due, now + seconds)
        return seconds

    def _tell(self, given_now: Counter[str], queued: Mapping[str, int], longest: int) -> None:
        now = time.monotonic()
        for task, count in given_now.items():
            logged, given = self._given.get(task, (-_LOG_EVERY_SECONDS, 0))
            given += count
            if now - logged < _LOG_EVERY_SECONDS:
                self._given[task] = (logged, given)
                continue
            self._given[task] = (now, 0)
            logger.info(
                "task %s is at its concurrency cap with %d messages waiting: gave back %d "
                "unstarted message%s to SQS, visible again within %d s",
                task,
                queued[task],
                given,
                "" if given == 1 else "s",
                longest,
            )

    def forget(self, messages: Iterable[Message]) -> None:
        """Stop tracking ``messages`` (given back unstarted)."""
        for message in messages:
            self._since.pop(id(message), None)
