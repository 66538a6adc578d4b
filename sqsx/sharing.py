"""Handler threads shared by the engines of several queues (``sqsx.group.QueueGroup``).

Each queue keeps its own engine: receivers, inbox, heartbeat, acks, stop sequence, and its
own dispatcher (handlers, backoff, poison policy, time limits, caps). What is shared is the
pool of handler threads: a free thread asks ``sqsx.fairness`` in which order to try the
queues, takes the first message one of their inboxes can start, and runs it through that
queue's engine (``handle``), which processes and settles it exactly as its own handler
threads would.

A thread with nothing to run waits on one condition that every inbox signals (``wake``)
when a message becomes ready. Lost wake-ups are ruled out by a sequence number read before
the inboxes are scanned: a message queued during the scan changes it, and the thread scans
again instead of waiting.

Each engine gets a ``Seat``: its place at the pool (its index for the fairness policy) and
the run's shared budget and idle clock (``sqsx.limits.RunLimits``), so that
``max_messages_total`` counts every queue's messages and ``exit_when_idle_seconds`` waits
until every queue was idle that long.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqsx.fairness import WeightedFairness
from sqsx.limits import RunLimits
from sqsx.message import Message

__all__ = ["HandlerPool", "MessageSource", "Seat"]

logger = logging.getLogger("sqsx.engine")

# An idle thread scans the inboxes again after this long even without a wake-up (seconds).
_IDLE_RESCAN_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class MessageSource:
    """What the pool needs of an engine.

    Attributes:
        take: a message of the queue that may start now (counted as running), or ``None``.
        handle: process and settle a message taken; ``False`` when the thread running it
            was abandoned past its time limit (a replacement was started) and must end.
        queue_url: the queue, for log lines.
    """

    take: Callable[[], Message | None]
    handle: Callable[[Message], bool]
    queue_url: str


class HandlerPool:
    """``threads`` handler threads serving ``len(weights)`` seats.

    Args:
        threads: handler threads (the run's ``max_threads``).
        weights: one weight per queue (``sqsx.fairness``).
        limits: the budget and idle clock the queues share.
    """

    def __init__(self, threads: int, weights: Sequence[int], limits: RunLimits) -> None:
        self._size = threads
        self._fairness = WeightedFairness(weights)
        self._sources: list[MessageSource | None] = [None] * len(weights)
        self._changed = threading.Condition()
        self._sequence = 0
        self._closed = False
        self._threads: list[threading.Thread] = []
        self.seats = [Seat(self, index, limits) for index in range(len(weights))]

    def start(self) -> None:
        """Start the handler threads."""
        for _ in range(self._size):
            self.replace()

    def replace(self) -> None:
        """Start one more handler thread (in place of one abandoned past its time limit)."""
        with self._changed:
            if self._closed:
                return
            thread = threading.Thread(
                target=self._work, name=f"sqsx-handler-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
        thread.start()

    def close(self, timeout: float = 1.0) -> None:
        """Let the threads end once they finish what they run (idempotent)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout / max(len(threads), 1))

    def thread_ids(self) -> frozenset[int]:
        with self._changed:
            return frozenset(t.ident for t in self._threads if t.ident is not None)

    def wake(self, count: int) -> None:
        """``count`` messages became ready in some inbox."""
        with self._changed:
            self._sequence += 1
            self._changed.notify(count)

    def attach(self, index: int, source: MessageSource | None) -> None:
        with self._changed:
            self._sources[index] = source
            self._sequence += 1
            self._changed.notify_all()

    def _work(self) -> None:
        while True:
            with self._changed:
                if self._closed:
                    return
                sequence = self._sequence
            picked = self._pick()
            if picked is None:
                with self._changed:
                    if sequence == self._sequence and not self._closed:
                        self._changed.wait(_IDLE_RESCAN_SECONDS)
                continue
            source, message = picked
            try:
                if not source.handle(message):
                    return
            except Exception:  # the shared threads must survive; the message comes back
                logger.exception(
                    "handling failed outside the handler message_id=%s queue_url=%s",
                    message.message_id,
                    source.queue_url,
                )

    def _pick(self) -> tuple[MessageSource, Message] | None:
        sources = self._sources  # replaced item by item; a stale read only skips a turn
        for index in self._fairness.order():
            source = sources[index]
            if source is None:
                continue
            message = source.take()
            if message is not None:
                self._fairness.started(index)
                return source, message
        return None


class Seat:
    """One queue's place at a ``HandlerPool`` (what its engine is given).

    Attributes:
        limits: the run's shared budget and idle clock.
    """

    def __init__(self, pool: HandlerPool, index: int, limits: RunLimits) -> None:
        self._pool = pool
        self._index = index
        self.limits = limits

    def attach(
        self,
        take: Callable[[], Message | None],
        handle: Callable[[Message], bool],
        queue_url: str,
    ) -> None:
        """Serve this queue's messages from now on (see ``MessageSource``)."""
        self._pool.attach(self._index, MessageSource(take, handle, queue_url))

    def detach(self) -> None:
        self._pool.attach(self._index, None)

    def wake(self, count: int) -> None:
        """``count`` messages of this queue became ready."""
        self._pool.wake(count)

    def replace(self) -> None:
        """A handler thread was abandoned past its time limit: start another."""
        self._pool.replace()

    def thread_ids(self) -> frozenset[int]:
        """The pool's handler threads."""
        return self._pool.thread_ids()
