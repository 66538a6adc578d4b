"""The polling engine's async side: the event loop takes ``async def`` messages from the
inbox itself, and the coroutines that ended are settled in batches.

A mixin of ``sqsx.engine.Engine``, kept apart so that each file holds one concern.

When every handler of the queue is an ``async def`` function (and no hook resolves
messages, which may block on I/O: an S3 claim check), a handler thread would only decode a
message and hand its coroutine over to the loop: two thread wake-ups and a hand-over per
message. The loop feeds itself instead (``LoopFeeder``): the inbox tells it, with one
wake-up per burst, when messages are ready; it takes as many as the lane has free slots,
under one lock, and begins each through ``Dispatcher.begin`` (so every fate is still the
core's), all in the loop's thread; the handler threads park. Should a plain handler be
registered meanwhile, the loop gives the messages back to the handler threads for the rest
of the run (a plain handler must not block the loop; one registered at the very moment the
loop begins a message may run there once).

However the runs began, those that end in one pass of the loop reach ``_coroutines_ended``
together: their deletes, visibility changes and places in the inbox are settled a batch at
a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from sqsx.batching import BatchFlusher
from sqsx.dispatch import Dispatcher, Outcome
from sqsx.hooks import HookChain
from sqsx.inbox import Inbox
from sqsx.lanes import AsyncLane, CoroutineRun, is_async_function
from sqsx.message import Message
from sqsx.ordering import Hold
from sqsx.routes import RawDispatcher, TaskDispatcher
from sqsx.sqs import BatchEntry

__all__ = ["Feeding", "LoopFeeder", "only_async_handlers"]

logger = logging.getLogger("sqsx.engine")


def only_async_handlers(dispatcher: Dispatcher) -> bool:
    """True when every handler ``dispatcher`` may call is an ``async def`` function."""
    if isinstance(dispatcher, RawDispatcher):
        return is_async_function(dispatcher.handler)
    if isinstance(dispatcher, TaskDispatcher):
        names = dispatcher.registry.names()
        return bool(names) and all(is_async_function(dispatcher.registry.get(n)) for n in names)
    return False


class LoopFeeder:
    """Runs ``feed`` in the loop's thread soon after ``wake`` (from any thread), once per
    burst of wake-ups.

    Args:
        call_soon: schedules a callback in the loop's thread (``EventLoopThread.call_soon``).
        feed: takes and begins what is ready (in the loop's thread).
    """

    def __init__(self, call_soon: Callable[[Callable[[], None]], None], feed: Callable[[], None]):
        self._call_soon = call_soon
        self._feed = feed
        self._lock = threading.Lock()
        self._scheduled = False

    def wake(self, count: int = 1) -> None:
        """Messages may be ready (``count``: how many; one feed takes them all)."""
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        self._call_soon(self._run)

    def _run(self) -> None:
        with self._lock:
            self._scheduled = False
        try:
            self._feed()
        except Exception:  # the loop must survive; what was taken is settled by the engine
            logger.exception("feeding the event loop failed")


class Feeding:
    """The async half of ``Engine`` (see there for the attributes it shares)."""

    _url: str
    _dispatcher: Dispatcher
    _hooks: HookChain
    _inbox: Inbox
    _deletes: BatchFlusher
    _lane: AsyncLane
    _feeder: LoopFeeder | None

    def _conclude(self, message: Message, outcome: Outcome) -> None:  # pragma: no cover
        raise NotImplementedError

    def _abandoned(self, message: Message, outcome: Outcome) -> None:  # pragma: no cover
        raise NotImplementedError

    def _hold_back(self, held: Sequence[Hold[Message]]) -> None:  # pragma: no cover
        raise NotImplementedError

    def _settled(self, message: Message, outcome: Outcome) -> BatchEntry | None:
        raise NotImplementedError  # pragma: no cover - Engine's

    def _log_held(self, message: Message, held: Sequence[Hold[Message]]) -> None:
        logger.info(
            "message_id=%s of group %s failed: holding back %d later messages of the "
            "group so none overtakes it queue_url=%s",
            message.message_id,
            message.group_id,
            len(held),
            self._url,
        )

    def _start_feeding(self) -> None:
        """Let the loop take the messages itself, if every handler is ``async def``."""
        self._feeder = None
        if self._hooks.resolves or not only_async_handlers(self._dispatcher):
            return
        self._feeder = LoopFeeder(self._dispatcher.event_loop.call_soon, self._feed)
        self._inbox.feed_to(self._feeder.wake)

    def _feed(self) -> None:
        """In the loop's thread: begin as many ready messages as the lane has slots for."""
        if self._feeder is None:
            return
        if not only_async_handlers(self._dispatcher):  # a plain one: handler threads again
            logger.info(
                "a handler that is not async def was registered: handler threads take the "
                "messages from now on queue_url=%s",
                self._url,
            )
            self._feeder = None
            self._inbox.feed_to(None)
            return
        detached = 0
        try:
            for message in self._inbox.take_many(self._lane.free):
                try:
                    outcome = self._dispatcher.begin(
                        message, hooks=self._hooks, on_abandon=self._abandoned, lane=self._lane
                    )
                except Exception:  # a bug (the core never raises): visible again at once
                    logger.exception(
                        "beginning message_id=%s escaped the core queue_url=%s",
                        message.message_id,
                        self._url,
                    )
                    outcome = self._dispatcher.fates.cancelled(message, "?", started=False)
                if isinstance(outcome, CoroutineRun):  # settled by ``_coroutines_ended``
                    detached += 1
                else:  # unreadable, unknown task, or the lane closed: decided already
                    self._conclude(message, outcome)
        finally:
            if detached:
                self._inbox.detach(detached)

    def _coroutines_ended(self, runs: Sequence[CoroutineRun]) -> None:
        """In the loop's thread, the coroutines that ended in one pass of the loop: settle
        their messages and free their places in the inbox, a batch at a time (one lock
        each for the deletes and the inbox, however many ended)."""
        finished: list[tuple[Message, int | None]] = []
        deletes: list[BatchEntry] = []
        for run in runs:
            message, outcome = run.received, run.outcome
            assert outcome is not None  # the lane sets it before handing the run over
            try:
                entry = self._settled(message, outcome)
                if entry is not None:
                    deletes.append(entry)
            except Exception:  # the loop must survive; the message is redelivered later
                logger.exception(
                    "could not settle message_id=%s queue_url=%s", message.message_id, self._url
                )
            finished.append((message, outcome.retry_after))
        try:
            self._deletes.add_many(deletes)
        finally:
            for message, held in self._inbox.done_many(finished, detached=True):
                self._log_held(message, held)
                self._hold_back(held)
            if self._feeder is not None and self._inbox.has_waiting:
                self._feeder.wake()  # their slots are free once this returns (a message
                # that arrives later wakes it through the inbox)
