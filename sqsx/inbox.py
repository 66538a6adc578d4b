"""The polling engine's inbox: received messages waiting for a handler thread.

Two kinds of thread meet here, each on its own condition (one lock): handler threads wait
for a message to run (``ready``), receivers wait for room to receive into (``room``). A
finished message wakes the few receivers, not every idle handler thread.

Room is counted with reservations: a receiver reserves a batch before it calls
ReceiveMessage, so messages running, waiting and on their way together never exceed the
limit the engine sets, however many receivers overlap.

On a FIFO queue a message group runs one message at a time, in the order received; other
groups run alongside. When a message of a group fails, the later messages of that group
still waiting are handed back (``done`` returns them) so that none overtakes it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence

from sqsx.message import Message

__all__ = ["Inbox"]


class Inbox:
    """Messages received and not yet finished, and the room left for more.

    Args:
        fifo: keep each message group's messages in order, one at a time.
    """

    def __init__(self, *, fifo: bool = False) -> None:
        lock = threading.Lock()
        self._ready = threading.Condition(lock)
        self._room = threading.Condition(lock)
        self._waiting: deque[Message] = deque()
        self._fifo = fifo
        self._busy_groups: set[str] = set()
        self._reserved = 0
        self.running = 0
        self.closed = False

    # -- receivers -------------------------------------------------------------------------

    def reserve(self, count: int, limit: int) -> bool:
        """Wait until ``count`` more messages fit under ``limit`` (running, waiting and
        reserved), then reserve them; ``False`` once the inbox is closed."""
        with self._room:
            while not self.closed and self._in_hand() + count > limit:
                self._room.wait()
            if self.closed:
                return False
            self._reserved += count
            return True

    def put(self, messages: Sequence[Message], reserved: int) -> bool:
        """Queue ``messages`` against a reservation of ``reserved``; ``False`` (nothing
        queued) once the inbox is closed."""
        with self._room:
            self._reserved -= reserved
            self._room.notify_all()
            if self.closed:
                return False
            self._waiting.extend(messages)
            self._ready.notify(len(messages))
            return True

    # -- handler threads -------------------------------------------------------------------

    def take(self) -> Message | None:
        """The next message to run, or ``None`` once the inbox is closed."""
        with self._ready:
            while True:
                if self.closed:
                    return None
                message = self._next()
                if message is not None:
                    self.running += 1
                    return message
                self._ready.wait()

    def done(self, message: Message, failed: bool) -> list[Message]:
        """Mark ``message`` finished; on FIFO after a failure, return its group's later
        messages, removed from the inbox, to be released."""
        with self._room:
            self.running -= 1
            held_back: list[Message] = []
            if self._fifo:
                group = message.group_id or ""
                self._busy_groups.discard(group)
                if failed:
                    held_back = [m for m in self._waiting if (m.group_id or "") == group]
                    if held_back:
                        self._waiting = deque(
                            m for m in self._waiting if (m.group_id or "") != group
                        )
                if self._waiting:
                    self._ready.notify()  # a message of this group may run now
            self._room.notify_all()
            return held_back

    def _next(self) -> Message | None:
        if not self._fifo:
            return self._waiting.popleft() if self._waiting else None
        for index, message in enumerate(self._waiting):
            group = message.group_id or ""
            if group not in self._busy_groups:
                del self._waiting[index]
                self._busy_groups.add(group)
                return message
        return None

    # -- the engine ------------------------------------------------------------------------

    def in_hand(self) -> int:
        """Messages running or waiting (reservations not counted)."""
        with self._room:
            return self.running + len(self._waiting)

    def _in_hand(self) -> int:
        return self.running + len(self._waiting) + self._reserved

    def close(self) -> list[Message]:
        """Refuse further messages and return those never started."""
        with self._room:
            self.closed = True
            waiting = list(self._waiting)
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
                self._room.wait(timeout)
            return True
