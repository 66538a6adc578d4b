"""One consume run at a time on a queue: its stop requests, its counters, and ``close``.

``Queue`` and ``RawQueue`` delegate ``consume_messages``, ``exit_gracefully``, ``stats``
and ``close`` here. The polling engine (and with it the stop watcher, the inbox, the
visibility keeper and the batch flushers) is imported only when a run starts, so that
``import sqsx_lambda`` never loads it.

A stop request belongs to one run. Made during a run, it stops that run only, even if it
arrives late, from a handler still running after the run ended. Made while no run is in
progress, by any other thread, it stops the next run at once (so a thread may ask for a
stop before ``consume_messages`` has started, as sqsx 0.7 programs do).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from sqsx.dispatch import Dispatcher
from sqsx.exceptions import SqsxError
from sqsx.sqs import SqsClient
from sqsx.stats import Stats, StatsHook, StatsSnapshot

if TYPE_CHECKING:
    from sqsx.engine import Engine
    from sqsx.options import ConsumeOptions
    from sqsx.sharing import Seat
    from sqsx.stopping import StopRequests

__all__ = ["Consumer"]

logger = logging.getLogger("sqsx.queue")


class Consumer:
    """The consuming side of one queue object.

    Args:
        client: the queue's SQS client.
        queue_url: the queue's URL.
        dispatcher: the queue's processing core.
    """

    def __init__(self, client: SqsClient, queue_url: str, dispatcher: Dispatcher) -> None:
        self._client = client
        self._url = queue_url
        self._dispatcher = dispatcher
        self._stats = Stats()
        self._lock = threading.Lock()  # held for the whole of a run
        self._stops: StopRequests | None = None
        self._early_stop = 0  # a request made while no run is in progress: 1 or 2 (force)
        self._engine: Engine | None = None
        self._last_run_threads: frozenset[int] = frozenset()
        self._consumer_thread = 0
        self._forced = False
        self._signals: tuple[int, ...] = ()

    @property
    def running(self) -> bool:
        """True while a run is in progress."""
        return self._lock.locked()

    def run(self, options: ConsumeOptions, *, signals: bool, seat: Seat | None = None) -> None:
        """Consume until stopped (see ``BaseQueue.consume_messages``); with ``seat``, on
        handler threads shared with other queues (``sqsx.group``).

        Raises:
            QueueUnavailableError: SQS refused the queue.
            SqsxError: this queue is already consuming in another thread.
        """
        from sqsx.engine import Engine
        from sqsx.stopping import StopRequests

        if not self._lock.acquire(blocking=False):
            raise SqsxError(f"{self._url} is already consuming messages in another thread")
        self._consumer_thread = threading.get_ident()
        stops = StopRequests(self._url)
        self._stops = stops  # from now on requests go to this run
        early, self._early_stop = self._early_stop, 0
        if early:
            stops.request(force=early > 1)
        logger.info("Starting consuming tasks, queue_url=%s", self._url)
        try:
            with stops.watching(signals=signals) as (stop, force):
                hooks = self._dispatcher.hooks.plus(StatsHook(self._stats))
                engine = Engine(
                    self._client, self._url, self._dispatcher, hooks, self._stats, options,
                    stop, force, seat,
                )  # fmt: skip
                self._engine = engine
                engine.run()
        finally:
            self._last_run_threads = self._engine.thread_ids() if self._engine else frozenset()
            self._engine = None
            self._stops = None
            self._forced = stops.forced
            self._signals = tuple(stops.signals)
            self._lock.release()
            logger.info("Stopping consuming tasks, queue_url=%s", self._url)

    def request_stop(self, *, force: bool = False) -> None:
        """Ask the run in progress to stop (see ``BaseQueue.exit_gracefully``)."""
        stops = self._stops
        if stops is not None:
            stops.request(force=force)
        elif threading.get_ident() in self._last_run_threads:
            logger.debug("stop request from a thread of a finished run ignored %s", self._url)
        else:
            self._early_stop = max(self._early_stop, 2 if force else 1)

    @property
    def forced_stop(self) -> bool:
        """True when the last run stopped without waiting for running handlers."""
        return self._forced

    @property
    def stop_signals(self) -> tuple[int, ...]:
        """The signals received during the last run, in order."""
        stops = self._stops
        return tuple(stops.signals) if stops is not None else self._signals

    def stats(self) -> StatsSnapshot:
        """Counters and handler latencies since the queue object was created."""
        return self._stats.snapshot()

    def close(self) -> None:
        """Stop the run in progress, if any, and wait for it to end. From one of the run's
        own threads (a handler, the event loop of async handlers, or the consuming thread
        itself, in a signal handler) it only asks: waiting there would never end."""
        if not self.running:
            return
        self.request_stop()
        if not self._inside():
            with self._lock:
                pass

    def _inside(self) -> bool:
        ident = threading.get_ident()
        if ident == self._consumer_thread:
            return True
        engine = self._engine
        if engine is not None and ident in engine.thread_ids():
            return True
        loop_thread = self._dispatcher.event_loop.thread
        return loop_thread is not None and loop_thread.ident == ident
