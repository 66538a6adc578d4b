"""The polling engine's inbox: received messages waiting for a handler thread.

Two kinds of thread meet here, each on its own condition (one lock): handler threads wait
for a message to run (``ready``), receivers wait for room to receive into (``room``). A
finished message wakes the few receivers, not every idle handler thread.

Room is counted with reservations: a receiver reserves a batch before it calls
ReceiveMessage, so messages running, waiting and on their way together never exceed the
limit the engine sets, however many receivers overlap.

A feeder (``sqsx.feeding``: the event loop of ``async def`` handlers) may take the ready
messages in place of the handler threads (``feed_to``): those then park until it gives the
messages back to them, and the feeder is told, with a count, when messages may have become
ready; it takes them in batches (``take_many``).

On a FIFO queue the group rule of ``sqsx.ordering`` applies: a group runs one message at a
time, in order; after a failure, ``done`` (and ``put``, for messages of that group received
meanwhile) hand back what must be held back so that none overtakes the failed message.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from sqsx.caps import ConcurrencyCaps
from sqsx.message import Message
from sqsx.ordering import GroupGate, Hold

__all__ = ["Inbox"]


def _group_of(message: Message) -> str | None:
    return message.group_id


class Inbox:
    """Messages received and not yet finished, and the room left for more.

    Args:
        fifo: keep each message group's messages in order, one at a time.
        caps: the tasks' concurrency caps (``sqsx.caps``), if any.
        on_ready: called with a count (under the inbox's lock) when that many messages may
            have become ready, for handler threads that wait elsewhere (``sqsx.sharing``).
    """

    def __init__(
        self,
        *,
        fifo: bool = False,
        caps: ConcurrencyCaps | None = None,
        on_ready: Callable[[int], None] | None = None,
    ) -> None:
        lock = threading.Lock()
        self._ready = threading.Condition(lock)
        self._room = threading.Condition(lock)
        self._waiting: deque[Message] = deque()
        self._gate = GroupGate(fifo=fifo, group_of=_group_of)
        self._caps = caps
        self._on_ready = on_ready
        self._reserved = 0
        self._room_waiters = 0  # receivers waiting on ``_room``
        self._idle_waiters = 0  # ``wait_idle`` callers waiting on ``_room``
        self._room_wanted = (1, 1)  # what they wait for: (count, limit) of ``reserve``
        self._detached = 0  # running messages whose coroutine holds no thread
        self._feeder: Callable[[int], None] | None = None  # takes ready messages instead
        self.running = 0
        self.closed = False

    # -- receivers -------------------------------------------------------------------------

    def reserve(self, count: int, limit: int) -> bool:
        """Wait until ``count`` more messages fit under ``limit`` (running, waiting and
        reserved), then reserve them; ``False`` once the inbox is closed."""
        with self._room:
            while not self.closed and self._in_hand(limit) + count > limit:
                self._room_wanted = (count, limit)
                self._room_waiters += 1
                try:
                    self._room.wait()
                finally:
                    self._room_waiters -= 1
            if self.closed:
                return False
            self._reserved += count
            return True

    def put(self, messages: Sequence[Message], reserved: int) -> list[Hold[Message]] | None:
        """Queue ``messages`` against a reservation of ``reserved``. Returns those to hold
        back (FIFO: their group's failed message is still hidden; a capped task's past
        what the worker keeps, ``sqsx.caps``), or ``None`` (nothing queued) once the inbox
        is closed."""
        with self._room:
            self._reserved -= reserved
            self._wake_room()
            if self.closed:
                return None
            now = time.monotonic()
            held = self._gate.admit(messages, self._waiting, now)
            if self._caps is not None:
                self._caps.waiting(messages, now)
                if not self._gate.fifo:  # a capped task's backlog past what the worker keeps
                    held += self._caps.overflow(messages, self._waiting)
            self._notify_ready(len(messages) - len(held))
            return held

    # -- handler threads -------------------------------------------------------------------

    def take(self) -> Message | None:
        """The next message to run, or ``None`` once the inbox is closed."""
        with self._ready:
            while True:
                if self.closed:
                    return None
                message = None if self._feeder is not None else self._start_next()
                if message is not None:
                    return message
                self._ready.wait()

    def try_take(self) -> Message | None:
        """The next message to run if one may start now, else (or once closed) ``None``."""
        with self._ready:
            return None if self.closed else self._start_next()

    def take_many(self, count: int) -> list[Message]:
        """Up to ``count`` messages that may start now (none once closed), under one lock."""
        taken: list[Message] = []
        with self._ready:
            while not self.closed and len(taken) < count:
                message = self._start_next()
                if message is None:
                    break
                taken.append(message)
        return taken

    def feed_to(self, feeder: Callable[[int], None] | None) -> None:
        """Have ``feeder`` take the ready messages (it is called with a count, under the
        lock, when that many may have become ready): handler threads park meanwhile. With
        ``None``, the handler threads take them again."""
        with self._ready:
            self._feeder = feeder
            if feeder is None:
                self._ready.notify_all()
            elif self._waiting:
                feeder(len(self._waiting))

    def _notify_ready(self, count: int) -> None:
        # Called with the lock held.
        if count <= 0:
            return
        if self._feeder is not None:
            self._feeder(count)
            return
        self._ready.notify(count)
        if self._on_ready is not None:
            self._on_ready(count)

    def _start_next(self) -> Message | None:
        caps = self._caps if self._caps is not None and self._caps.active else None
        message = self._gate.pick(self._waiting, None if caps is None else caps.allowed)
        if message is not None:
            self.running += 1
            if caps is not None:
                caps.started(message)
        return message

    def detach(self, count: int = 1) -> None:
        """``count`` running messages no longer hold a handler thread (their coroutines run
        on the async lane): they take no room until ``done(..., detached=True)``."""
        with self._room:
            self._detached += count
            self._wake_room()

    def done(
        self, message: Message, retry_after: int | None, *, detached: bool = False
    ) -> list[Hold[Message]]:
        """Mark ``message`` finished (``retry_after``: its outcome's, ``None`` when it was
        deleted; ``detached``: it was detached); on FIFO after a failure, return its group's
        later messages, removed from the inbox, to be held back."""
        with self._room:
            held = self._finish(message, retry_after, detached, time.monotonic())
            self._wake_room()
            return held

    def done_many(
        self, finished: Sequence[tuple[Message, int | None]], *, detached: bool = False
    ) -> list[tuple[Message, list[Hold[Message]]]]:
        """``done`` for each ``(message, retry_after)`` of ``finished``, under one lock and
        with one wake-up of the receivers; returns the messages that have later messages
        to hold back, with those."""
        helds: list[tuple[Message, list[Hold[Message]]]] = []
        if not finished:
            return helds
        with self._room:
            now = time.monotonic()
            for message, retry_after in finished:
                held = self._finish(message, retry_after, detached, now)
                if held:
                    helds.append((message, held))
            self._wake_room()
        return helds

    def _finish(
        self, message: Message, retry_after: int | None, detached: bool, now: float
    ) -> list[Hold[Message]]:
        # Called with the lock held.
        self.running -= 1
        self._detached -= detached  # may run before its ``detach``: the sum is what counts
        held = self._gate.finish(message, retry_after, self._waiting, now)
        capped = self._caps is not None and self._caps.active
        if capped and self._caps is not None:
            self._caps.finished(message)
        if (self._gate.fifo or capped) and self._waiting:
            self._notify_ready(1)  # a message of this group, or of this task, may run now
        return held

    def _wake_room(self) -> None:
        # Called with the lock held. Wakes as many receivers as there are whole batches of
        # room (one finished message rarely makes one), and every waiter once idle.
        if self._idle_waiters and not self.running and not self._waiting:
            self._room.notify_all()  # what wait_idle waits for
            return
        if not self._room_waiters:
            return
        count, limit = self._room_wanted
        free = limit - self._in_hand(limit)
        if free >= count:
            self._room.notify(free // count)

    # -- the engine ------------------------------------------------------------------------

    @property
    def has_waiting(self) -> bool:
        """True when messages wait to start (read without the lock: a hint)."""
        return bool(self._waiting)

    def in_hand(self) -> int:
        """Messages running or waiting (reservations not counted)."""
        with self._room:
            return self.running + len(self._waiting)

    def _in_hand(self, limit: int = 0) -> int:
        # Messages their task's cap keeps waiting take no room, up to ``limit`` of them:
        # other tasks keep flowing while a capped backlog waits.
        blocked = self._caps.blocked(self._waiting) if self._caps is not None and limit else 0
        taken = self.running - self._detached + len(self._waiting) + self._reserved
        return taken - min(blocked, limit)

    def overdue(self) -> list[Message]:
        """Waiting messages held for their task's cap too long (``sqsx.caps``), removed
        from the inbox, to be released."""
        if self._caps is None:
            return []
        with self._room:
            released = self._caps.overdue(self._waiting, time.monotonic())
            if released:
                self._room.notify_all()
            return released

    def close(self) -> list[Message]:
        """Refuse further messages and return those never started."""
        with self._room:
            self.closed = True
            waiting = list(self._waiting)
            if self._caps is not None:
                self._caps.forget(waiting)
            self._waiting.clear()
            self._ready.notify_all()
            self._room.notify_all()
            return waiting

    def wait_idle(self, deadline: float | None, force: threading.Event) -> bool:
        """Wait until nothing runs or waits (or ``deadline``/``force``); ``True`` when idle."""
        with self._room:
            while self.running or (self._waiting and not self.closed):
                if force.is_set():
                    return False
                timeout = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
                if timeout <= 0:
                    return False
                self._idle_waiters += 1
                try:
                    self._room.wait(timeout)
                finally:
                    self._idle_waiters -= 1
            return True
