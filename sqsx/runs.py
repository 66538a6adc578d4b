"""``CoroutineRun``: one message's coroutine on the async lane, and its result.

A light stand-in for a ``concurrent.futures.Future[Outcome]``: a slotted object with no
lock or condition of its own. The lane (``sqsx.lanes``) resolves it in the event loop's
thread; a runtime that gave the lane an ``on_ended`` callback gets every finished run in
batches there and never watches a run. Watching one (``add_done_callback``, ``result``: the
Lambda runner, tests) takes one lock shared by all runs, and only then: a run nobody
watches is resolved by two attribute stores.

Why that is race-free without a lock on the resolving side: the loop stores ``_over``
(once the runtime has the outcome and the run's slot is free), then reads ``_watched``; a
watcher stores ``_watched`` (under the lock), then reads ``_over``. Under the interpreter
lock these are sequentially consistent, so at least one side sees the other's store:
either the loop runs the callbacks and wakes the waiter (under the lock), or the watcher
sees the run done and calls its callback, or returns, itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable

from sqsx.fates import Fates
from sqsx.hooks import HookChain, Processing
from sqsx.message import Message
from sqsx.outcome import Outcome

__all__ = ["CoroutineRun"]

logger = logging.getLogger("sqsx.dispatch")

_WATCH_LOCK = threading.Lock()  # callbacks and waiters of every run; watchers only

DoneCallback = Callable[["CoroutineRun"], object]


class CoroutineRun:
    """One message's coroutine on the lane, as the dispatcher prepared it (``call`` makes
    the coroutine); its result is the message's ``Outcome``.

    Attributes:
        message: the message the handler gets (after the hooks' ``resolve_message``).
        received: the message as received (what the runtime holds, deletes, releases).
        outcome: ``None`` until the coroutine is over.
    """

    __slots__ = (
        "_callbacks",
        "_over",
        "_waiter",
        "_watched",
        "call",
        "chain",
        "context",
        "cut",
        "fates",
        "label",
        "limit",
        "message",
        "outcome",
        "processing",
        "received",
        "started",
        "task",
        "timer",
    )

    def __init__(
        self,
        call: Callable[[], object],
        message: Message,
        label: str,
        limit: float | None,
        fates: Fates,
        chain: HookChain,
        processing: Processing | None,
        received: Message | None = None,
    ) -> None:
        self.call = call
        self.message = message
        self.received = message if received is None else received
        self.label = label
        self.limit = limit
        self.fates = fates
        self.chain = chain
        self.processing = processing
        self.task: asyncio.Task[None] | None = None  # driving it, once begun on the loop
        self.timer: asyncio.TimerHandle | None = None  # its time limit's, if any
        self.cut: str | None = None  # why the lane cancelled it: time limit or cancel_all
        self.started = 0.0
        self.outcome: Outcome | None = None  # set by the lane when decided
        self._over = False  # decided, settled by the runtime and its slot free
        self._watched = False
        self._callbacks: list[DoneCallback] | None = None
        self._waiter: threading.Event | None = None
        #: The starting thread's context variables: the coroutine runs in a copy of them,
        #: as a sync handler would run in that thread (a tracing span current there).
        self.context = contextvars.copy_context()

    def done(self) -> bool:
        """True once the coroutine is over (or abandoned), its ``Outcome`` handed to the
        runtime and its slot free."""
        return self._over

    def cancel(self) -> bool:
        """Refused (``False``): a run ends through its lane (``AsyncLane.cancel_all``), so
        that its message always gets an ``Outcome``."""
        return False

    def add_done_callback(self, fn: DoneCallback) -> None:
        """Call ``fn(run)`` once it is done (in the loop's thread), or now if it is."""
        with _WATCH_LOCK:
            self._watched = True
            if not self._over:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        fn(self)

    def result(self, timeout: float | None = None) -> Outcome:
        """The ``Outcome``, waiting up to ``timeout`` seconds (``None``: for ever) for it.

        Raises:
            TimeoutError: not over within ``timeout``.
        """
        if not self._over:
            with _WATCH_LOCK:
                self._watched = True
                if not self._over and self._waiter is None:
                    self._waiter = threading.Event()
                waiter = None if self._over else self._waiter
            if waiter is not None and not waiter.wait(timeout) and not self._over:
                raise TimeoutError(
                    f"coroutine of message_id={self.message.message_id} still running"
                )
        outcome = self.outcome
        assert outcome is not None  # set before ``_over``
        return outcome

    # -- the lane's side (in the loop's thread) ------------------------------------------

    def finish(self) -> None:
        """Mark the run done (its outcome is set, its slot free): release ``result``
        callers, then run the callbacks added so far (a failing one is logged)."""
        self._over = True
        if not self._watched:
            return
        with _WATCH_LOCK:
            callbacks, self._callbacks = self._callbacks, None
            waiter = self._waiter
        if waiter is not None:
            waiter.set()
        for fn in callbacks or ():
            try:
                fn(self)
            except Exception:  # the loop must survive a runtime's callback
                logger.exception(
                    "callback of the coroutine of message_id=%s raised", self.message.message_id
                )
