"""Limits that end a consuming run by themselves: a message budget and an idle timeout.

For jobs that scale to zero (KEDA ScaledJob, ECS scheduled tasks): ``max_messages_total``
stops receiving once that many messages were received (every receive asks for no more than
the budget has left, so none is received only to be given back), and the run ends when they
are done; ``exit_when_idle_seconds`` ends the run once no message was received and none was
held for that long. Either way the run ends through the usual stop sequence.
"""

from __future__ import annotations

import threading
import time

__all__ = ["RunLimits"]


class RunLimits:
    """The budget and idle clock of one run (thread-safe).

    Args:
        max_messages_total: messages the run may receive, or ``None`` for no limit.
        exit_when_idle_seconds: idle seconds that end the run, or ``None`` for never.
    """

    def __init__(
        self, *, max_messages_total: int | None, exit_when_idle_seconds: float | None
    ) -> None:
        self._lock = threading.Lock()
        self._left = max_messages_total
        self._idle_seconds = exit_when_idle_seconds
        self._last_activity = time.monotonic()

    def take(self, wanted: int) -> int:
        """Messages the next receive may ask for, at most ``wanted``; ``0`` once the budget
        is spent. Give back what the receive did not bring with ``give_back``."""
        with self._lock:
            if self._left is None:
                return wanted
            granted = min(wanted, self._left)
            self._left -= granted
            return granted

    def give_back(self, unused: int) -> None:
        """Return ``unused`` messages of a grant to the budget (a receive brought fewer)."""
        if unused <= 0:
            return
        with self._lock:
            if self._left is not None:
                self._left += unused

    def spent(self) -> bool:
        """True once the budget allows no more receives."""
        with self._lock:
            return self._left is not None and self._left <= 0

    def active(self) -> None:
        """Messages arrived or are held: restart the idle clock."""
        with self._lock:
            self._last_activity = time.monotonic()

    def idle_expired(self, *, busy: bool) -> bool:
        """True when the run was idle for ``exit_when_idle_seconds``; ``busy`` (messages
        held or acks pending now) restarts the clock instead."""
        if self._idle_seconds is None:
            return False
        with self._lock:
            now = time.monotonic()
            if busy:
                self._last_activity = now
                return False
            return now - self._last_activity >= self._idle_seconds
