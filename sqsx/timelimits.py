"""Time limits: a handler that runs past its limit is asked to stop, and let go if it won't.

Python cannot kill a thread. When a handler passes its limit, ``TimeLimitExceeded`` is
raised inside its thread (``PyThreadState_SetAsyncExc``, as dramatiq's ``TimeLimit``
does). It lands at the next bytecode the thread runs, so it stops Python code (loops,
``await`` points of an async handler, which is then cancelled) but not a blocking C call
(``time.sleep``, a socket read without a timeout, a lock wait): the exception waits until
that call returns. A handler that has not returned ``grace_seconds`` after its limit
(still blocked, or one that caught the exception and carried on) is abandoned: its
message gets its backoff at once and the runtime replaces its thread, so the worker keeps
its full thread count. Whatever the abandoned thread does later is ignored by the
worker; ``TimeLimits.overrunning`` lists the abandoned handlers that still run, which is
how ``sqsx worker --processes N`` ends a child that has one past its hard deadline
(``sqsx.cli.overrun``).

One ticker thread per ``TimeLimits``, started on first use, wakes at the next deadline.
"""

from __future__ import annotations

import ctypes
import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqsx.backoff import MAX_VISIBILITY_TIMEOUT_SECONDS
from sqsx.exceptions import ConfigurationError, TimeLimitExceeded

__all__ = ["DEFAULT_GRACE_SECONDS", "Guard", "GuardState", "TimeLimits", "checked_time_limit"]

#: Seconds a handler gets, after ``TimeLimitExceeded`` is raised in it, before it is
#: abandoned.
DEFAULT_GRACE_SECONDS = 2.0


def checked_time_limit(value: object, name: str = "time_limit") -> float | None:
    """``value`` as a time limit in seconds: ``None`` (no limit) or a number above 0 and at
    most 43200 (12 hours, the longest SQS keeps a message hidden).

    Raises:
        ConfigurationError: anything else; the message names ``name`` and the bound.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number of seconds or None, got {value!r}")
    if not 0 < value <= MAX_VISIBILITY_TIMEOUT_SECONDS:
        raise ConfigurationError(
            f"{name} must be above 0 and at most {MAX_VISIBILITY_TIMEOUT_SECONDS} seconds, "
            f"got {value!r}"
        )
    return float(value)


def _raise_in(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Raise ``exc_type`` in thread ``thread_id`` at its next bytecode; ``None`` withdraws
    an exception not yet raised."""
    exc = ctypes.py_object(exc_type) if exc_type is not None else ctypes.c_void_p(0)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), exc)


class GuardState(enum.Enum):
    """Where a guarded handler is."""

    RUNNING = "running"
    INTERRUPTED = "interrupted"  # TimeLimitExceeded was raised in its thread
    ABANDONED = "abandoned"  # given up on; its message already has its fate
    DONE = "done"


@dataclass(eq=False, slots=True)
class Guard:
    """One handler run under a limit (from ``TimeLimits.arm`` to ``TimeLimits.disarm``).

    Attributes:
        limit: the limit in seconds.
        on_abandon: called (in the ticker thread) if the handler is abandoned.
        message_id: the message's id, for log lines (set by ``on_abandon``).
        task: the task's name, for log lines (set by ``on_abandon``).
        abandoned_at: when it was abandoned (``time.monotonic()``; 0 until then).
    """

    limit: float
    on_abandon: Callable[[Guard], None]
    message_id: str = ""
    task: str = ""
    thread_id: int = field(default_factory=threading.get_ident)
    deadline: float = 0.0
    state: GuardState = GuardState.RUNNING
    abandoned_at: float = 0.0


class TimeLimits:
    """The handlers running under a limit, and the ticker that enforces the limits.

    Args:
        grace_seconds: seconds between the stop exception and abandoning the handler.
    """

    def __init__(self, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        self.grace_seconds = grace_seconds
        self._lock = threading.Condition()
        self._guards: set[Guard] = set()
        self._abandoned: set[Guard] = set()  # abandoned, and their handler not yet returned
        self._ticker: threading.Thread | None = None

    def arm(self, limit: float, on_abandon: Callable[[Guard], None]) -> Guard:
        """Start the clock for the calling thread's handler."""
        guard = Guard(limit, on_abandon)
        guard.deadline = time.monotonic() + limit
        with self._lock:
            self._guards.add(guard)
            if self._ticker is None:
                self._ticker = threading.Thread(
                    target=self._tick, name="sqsx-time-limits", daemon=True
                )
                self._ticker.start()
            self._lock.notify()
        return guard

    def disarm(self, guard: Guard) -> GuardState:
        """Stop the clock (call in the handler's thread, as soon as the handler is done);
        returns what happened to it. A stop exception not yet delivered is withdrawn."""
        with self._lock:
            self._guards.discard(guard)
            self._abandoned.discard(guard)
            state = guard.state
            if state is not GuardState.RUNNING and state is not GuardState.DONE:
                _raise_in(guard.thread_id, None)  # if not yet raised: no longer wanted
            if state is not GuardState.ABANDONED:
                guard.state = GuardState.DONE
            return state

    def overrunning(self, seconds: float) -> list[Guard]:
        """The handlers abandoned at least ``seconds`` ago that have still not returned
        (oldest first)."""
        now = time.monotonic()
        with self._lock:
            late = [g for g in self._abandoned if now - g.abandoned_at >= seconds]
        return sorted(late, key=lambda g: g.abandoned_at)

    def _tick(self) -> None:
        while True:
            abandoned: list[Guard] = []
            with self._lock:
                now = time.monotonic()
                for guard in self._guards:
                    if guard.state is GuardState.RUNNING and now >= guard.deadline:
                        guard.state = GuardState.INTERRUPTED
                        _raise_in(guard.thread_id, TimeLimitExceeded)
                    elif (
                        guard.state is GuardState.INTERRUPTED
                        and now >= guard.deadline + self.grace_seconds
                    ):
                        guard.state = GuardState.ABANDONED
                        guard.abandoned_at = now
                        abandoned.append(guard)
                        self._abandoned.add(guard)
                self._guards.difference_update(abandoned)
                wake = [
                    g.deadline + (self.grace_seconds if g.state is GuardState.INTERRUPTED else 0)
                    for g in self._guards
                ]
                if not abandoned:
                    self._lock.wait(max(min(wake) - now, 0.005) if wake else None)
            for guard in abandoned:
                guard.on_abandon(guard)
