"""The polling engine: receivers, handler threads, batched acks, and the stop sequence.

Threads with fixed roles:

- receivers (by default 1 to 8) long-poll SQS whenever the handlers are about to run dry, so the
  next batch is in hand before the current one is done: there is no batch barrier;
- ``max_threads`` handler threads run messages through the ``Dispatcher``; an ``async def``
  handler's coroutine is handed to the async lane (``sqsx.lanes``, up to ``max_async`` at
  once) and frees its thread and its room in the inbox until it ends; when every handler
  is ``async def``, the event loop takes the messages itself (``sqsx.feeding``);
- one timer thread drives the heartbeat and sends partial batches of acks;
- small pools send DeleteMessageBatch and ChangeMessageVisibilityBatch calls.

Stop sequence (started by the ``stop`` event; setting it again is harmless): stop
receiving; give back received but unstarted messages at once (visibility 0); let running
handlers and coroutines finish, up to ``stop_timeout`` (or until ``force`` is set), then
cancel the coroutines left (visible again at once); wait for a long poll in flight and
release what it brings; flush pending acks and visibility changes.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sqsx.batching import BatchFlusher
from sqsx.caps import CAP_WAIT_LIMIT_SECONDS, ConcurrencyCaps
from sqsx.dispatch import Dispatcher, Outcome
from sqsx.exceptions import QueueUnavailableError
from sqsx.feeding import Feeding, LoopFeeder
from sqsx.hooks import HookChain
from sqsx.inbox import Inbox
from sqsx.lanes import AsyncLane, CoroutineRun
from sqsx.limits import RunLimits
from sqsx.message import Message
from sqsx.ordering import Hold, is_fifo
from sqsx.receiving import Receiving
from sqsx.shutdown import Shutdown
from sqsx.sqs import (
    BatchEntry,
    EntryFailure,
    SqsClient,
    delete_batch,
    describe_error,
)
from sqsx.stats import Stats
from sqsx.timeouts import read_timeout_problem
from sqsx.visibility import VisibilityKeeper

if TYPE_CHECKING:
    from sqsx.options import ConsumeOptions
    from sqsx.sharing import Seat

__all__ = ["Engine"]

logger = logging.getLogger("sqsx.engine")

_TICK_SECONDS = 0.05


class Engine(Receiving, Shutdown, Feeding):
    """One run of ``consume_messages`` on one queue.

    Args:
        client: the SQS client (share one across threads; size its connection pool).
        queue_url: the queue.
        dispatcher: the processing core.
        hooks: the hooks to run around each message (the queue's, plus the run's own).
        stats: counters to feed (received and released messages; the hooks count the rest).
        options: validated ``consume_messages`` options.
        stop: set to stop gracefully (``exit_gracefully`` and the first signal set it).
        force: set to stop without waiting for running handlers (the second signal).
        seat: handler threads and job limits shared with other queues (``sqsx.sharing``).
    """

    def __init__(
        self,
        client: SqsClient,
        queue_url: str,
        dispatcher: Dispatcher,
        hooks: HookChain,
        stats: Stats,
        options: ConsumeOptions,
        stop: threading.Event,
        force: threading.Event,
        seat: Seat | None = None,
    ) -> None:
        self._client = client
        self._url = queue_url
        self._dispatcher = dispatcher
        self._hooks = hooks
        self._stats = stats
        self._options = options
        self._stop = stop
        self._force = force
        self._seat = seat
        self._caps = ConcurrencyCaps(lambda: dispatcher.task_caps)
        self._inbox = Inbox(
            fifo=is_fifo(queue_url),
            caps=self._caps,
            on_ready=None if seat is None else seat.wake,
        )
        self._next_overdue_check = 0.0
        self._threads: list[threading.Thread] = []
        self._deleting: dict[str, Message] = {}  # receipt handle -> message, for after_delete
        self._fatal: BaseException | None = None
        self._timer_done = threading.Event()
        self._polling = threading.Event()  # set while receives bring messages in
        self._next_drain_check = 0.0
        self._limits = RunLimits(
            max_messages_total=options.max_messages_total,
            exit_when_idle_seconds=options.exit_when_idle_seconds,
        )
        if seat is not None:
            self._limits = seat.limits
        self._visibility_timeout = 0
        self._hand_limit = 0
        self._keeper: VisibilityKeeper
        self._deletes: BatchFlusher
        self._lane: AsyncLane  # ``async def`` handlers' coroutines (``sqsx.lanes``)
        self._feeder: LoopFeeder | None = None  # the loop takes messages itself (``feeding``)
        self._decode_ahead = False  # set by ``run``

    # -- running ---------------------------------------------------------------------------

    def run(self) -> None:
        """Consume until stopped (or one receive, without ``run_forever``), then clean up.

        Raises:
            QueueUnavailableError: SQS answered with an error retrying cannot fix.
        """
        options = self._options
        problem = read_timeout_problem(self._client, options.polling_wait_seconds)
        if problem:  # the user's client is kept: boto3 has no per-call timeouts
            logger.warning("%s queue_url=%s", problem, self._url)
        # Every receive asks for this timeout, so the lease always matches the heartbeat,
        # even when the queue's own setting could not be read.
        self._visibility_timeout = options.visibility_timeout or self._queue_visibility_timeout()
        if self._dispatcher.task_caps and not is_fifo(self._url):
            self._caps.max_receive_count = self._redrive_limit()
        self._keeper = VisibilityKeeper(self._client, self._url, self._visibility_timeout)
        self._lane = AsyncLane(
            self._dispatcher.event_loop,
            max_coroutines=options.max_async,
            grace_seconds=self._dispatcher.time_limits.grace_seconds,
            on_ended=self._coroutines_ended,
        )
        self._dispatcher_async = self._dispatcher.has_async_handlers()
        receiver_count = self._receiver_count()
        # In hand (running, waiting, being received): a batch more than the receivers bring.
        self._hand_limit = options.max_threads + (receiver_count + 1) * options.max_messages
        self._deletes = BatchFlusher(
            "DeleteMessageBatch",
            self._delete
            if self._hooks.watches_deletes
            else functools.partial(delete_batch, self._client, self._url),
            self._url,
            max_delay=options.ack_delay_seconds,
            workers=receiver_count + 1,  # deletes keep up with what the receivers bring
        )
        if self._seat is None:
            self._start_feeding()
        # Receivers decode task bodies ahead for handler threads; not for the event loop,
        # which is busy anyway (decoding in a receiver just woken from its call costs more)
        self._decode_ahead = not self._hooks.resolves and self._feeder is None
        threads = [self._spawn(self._timer_loop, "sqsx-timer")]
        own = 0 if self._seat else options.max_threads  # else the seat's shared threads
        threads += [self._spawn(self._handle_loop, f"sqsx-handler-{i}") for i in range(own)]
        if self._seat is not None:
            self._seat.attach(self._inbox.try_take, self.handle, self._url)
        receivers: list[threading.Thread] = []
        try:
            if options.run_forever:
                receivers = [
                    self._spawn(functools.partial(self._receive_loop, i), f"sqsx-receiver-{i}")
                    for i in range(receiver_count)
                ]
                while not self._stop.wait(0.2):
                    ended = not any(r.is_alive() for r in receivers)
                    if ended or self._drained() or self._idle():
                        break
            else:
                self._receive_once()
                self._inbox.wait_idle(None, self._stop)
        finally:
            self._shutdown(receivers, threads)
            if self._seat is not None:
                self._seat.detach()
        if self._fatal is not None:
            raise QueueUnavailableError(
                f"SQS refused {self._url}: {describe_error(self._fatal)}"
            ) from self._fatal

    def thread_ids(self) -> frozenset[int]:
        """The identities of this run's own threads (receivers, handlers, timer)."""
        own = frozenset(t.ident for t in self._threads if t.ident is not None)
        return own if self._seat is None else own | self._seat.thread_ids()

    def _spawn(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    # -- handling ----------------------------------------------------------------------------

    def _handle_loop(self) -> None:
        while (message := self._inbox.take()) is not None and self.handle(message):
            pass  # ``handle`` False: this thread was abandoned past a time limit, and ends

    def handle(self, message: Message) -> bool:
        """Process and settle ``message`` (a coroutine goes to the async lane and is settled
        when it ends); ``False``: this thread was abandoned, and must end."""
        outcome = self._dispatcher.begin(
            message, hooks=self._hooks, on_abandon=self._abandoned, lane=self._lane
        )
        if isinstance(outcome, CoroutineRun):  # on the loop now: settled when it ends
            self._inbox.detach()
            return True
        if outcome.late:  # abandoned past its time limit: settled, and this thread replaced
            return False
        self._conclude(message, outcome)
        return True

    def _conclude(self, message: Message, outcome: Outcome) -> None:
        """Settle a finished message and free its place in the inbox."""
        try:
            self._settle(message, outcome)
        except Exception:  # the loop must survive; the message is redelivered later
            logger.exception(
                "could not settle message_id=%s queue_url=%s", message.message_id, self._url
            )
        finally:
            held = self._inbox.done(message, outcome.retry_after)
        if held:
            self._log_held(message, held)
            self._hold_back(held)

    def _abandoned(self, message: Message, outcome: Outcome) -> None:
        """A handler past its time limit and grace (called from the time-limit ticker):
        settle its message now and start a thread in its place."""
        try:
            self._settle(message, outcome)
        finally:
            self._hold_back(self._inbox.done(message, outcome.retry_after))
        if self._seat is not None:
            self._seat.replace()
        elif not self._inbox.closed:
            self._spawn(self._handle_loop, f"sqsx-handler-{len(self._threads)}")

    def _settle(self, message: Message, outcome: Outcome) -> None:
        entry = self._settled(message, outcome)
        if entry is not None:
            self._deletes.add(entry)

    def _settled(self, message: Message, outcome: Outcome) -> BatchEntry | None:
        """Stop a finished message's heartbeat: the delete to send, or ``None`` once its
        visibility change is queued (``outcome.retry_after``)."""
        if outcome.retry_after is not None:
            self._keeper.change(message, outcome.retry_after)
            return None
        self._keeper.let_go(message)
        if self._hooks.watches_deletes:
            self._deleting[message.receipt_handle] = message
        return BatchEntry(message.message_id, message.receipt_handle)

    def _delete(self, entries: Sequence[BatchEntry]) -> list[EntryFailure]:
        """DeleteMessageBatch, then ``after_delete`` for each entry SQS deleted."""
        failures = delete_batch(self._client, self._url, entries)
        refused = {id(failure.entry) for failure in failures}
        done = [self._deleting.pop(e.receipt_handle, None) for e in entries if id(e) not in refused]
        self._hooks.deleted([m for m in done if m is not None], self._url)
        return failures

    def _hold_back(self, held: Sequence[Hold[Message]]) -> None:
        """Give FIFO messages back unstarted, visible again only after their group's
        failed message (see ``sqsx.ordering``)."""
        if not held:
            return
        self._stats.released(len(held))
        for hold in held:
            self._keeper.change(hold.item, hold.seconds)

    def _release(self, messages: Sequence[Message]) -> None:
        """Give messages back unstarted: visible again at once."""
        if not messages:
            return
        self._stats.released(len(messages))
        logger.info(
            "releasing %d unstarted message%s queue_url=%s",
            len(messages),
            "" if len(messages) == 1 else "s",
            self._url,
        )
        for message in messages:
            self._keeper.change(message, 0)

    # -- timer and stop ----------------------------------------------------------------------

    def _timer_loop(self) -> None:
        while not self._timer_done.wait(_TICK_SECONDS):
            try:
                self._keeper.beat()
                self._deletes.tick()
                self._release_overdue()
            except Exception:
                logger.exception("timer tick failed queue_url=%s", self._url)

    def _release_overdue(self) -> None:
        """Once a second: release messages held for their task's cap too long."""
        now = time.monotonic()
        if now < self._next_overdue_check:
            return
        self._next_overdue_check = now + 1.0
        overdue = self._inbox.overdue()
        if overdue:
            logger.warning(
                "%d messages waited %ds for their task's max_concurrency: released queue_url=%s",
                len(overdue),
                CAP_WAIT_LIMIT_SECONDS,
                self._url,
            )
            self._release(overdue)
