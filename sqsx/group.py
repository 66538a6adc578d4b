"""``QueueGroup``: one worker consuming several queues on shared handler threads.

Each queue keeps everything that is its own: its handlers, backoff, poison policy,
visibility timeout (``visibility_timeout``, or each queue's own setting), time limits and
concurrency caps, and its engine (receivers, inbox, heartbeat, acks, stop sequence). The
group adds one pool of ``max_threads`` handler threads that serve every queue by weighted
fair sharing (``sqsx.fairness``): while several queues have work, each gets its weight's
share of the message starts; a flooded queue cannot starve a quiet one, whose message waits
for at most one free thread. An empty queue costs what it costs alone: one ReceiveMessage
(a long poll of at most 1 s) per second, by one receiver.

Stopping: ``exit_gracefully`` (or SIGINT/SIGTERM with signal handlers on) stops every queue,
each with its own stop sequence; ``queue.exit_gracefully()`` on one member stops that queue
only. With ``drain``, each queue stops once it is drained and the run ends when all have;
``max_messages_total`` counts the messages of every queue together, and
``exit_when_idle_seconds`` ends the run once every queue was idle that long. A queue SQS
refuses (it does not exist, access denied) stops the whole group, which then raises
``QueueUnavailableError``.

Counters: ``stats()`` for the whole group, ``stats_by_queue()`` (or each queue's own
``stats()``) per queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqsx.basequeue import BaseQueue
from sqsx.consuming import Consuming
from sqsx.exceptions import ConfigurationError, SqsxError, WrongTypeError
from sqsx.fairness import checked_weights
from sqsx.stats import StatsSnapshot, sum_snapshots

if TYPE_CHECKING:
    from sqsx.options import ConsumeOptions
    from sqsx.sharing import HandlerPool, Seat

__all__ = ["QueueGroup"]

logger = logging.getLogger("sqsx.queue")

_TICK_SECONDS = 0.05


class QueueGroup(Consuming):
    """Several queues consumed by one worker, sharing its handler threads.

    Args:
        queues: the ``Queue``/``RawQueue`` objects, each with its own URL.
        weights: one whole number per queue, 1 to 1000 (default all 1): while several
            queues have work, queue ``i`` gets ``weights[i] / sum(weights)`` of the
            message starts.

    Raises:
        ConfigurationError: no queue, the same URL twice, or weights that do not fit.
        WrongTypeError: (a ``TypeError``) an item is not a ``Queue``/``RawQueue``.
    """

    def __init__(self, queues: Iterable[BaseQueue], *, weights: Sequence[int] | None = None):
        self._queues = tuple(queues)
        if not self._queues:
            raise ConfigurationError("QueueGroup needs at least one queue")
        for queue in self._queues:
            if not isinstance(queue, BaseQueue):
                raise WrongTypeError(f"not a sqsx Queue or RawQueue: {type(queue).__name__}")
        urls = [queue.url for queue in self._queues]
        twice = sorted({url for url in urls if urls.count(url) > 1})
        if twice:
            raise ConfigurationError(f"QueueGroup got the same queue twice: {', '.join(twice)}")
        self._weights = checked_weights(weights, len(self._queues))
        self._lock = threading.Lock()  # held for the whole of a run
        self._threads: set[int] = set()  # the run's own: its caller's and each queue's
        self._pool: HandlerPool | None = None
        self._forced = False
        self._signals: tuple[int, ...] = ()

    @property
    def queues(self) -> tuple[BaseQueue, ...]:
        return self._queues

    @property
    def weights(self) -> tuple[int, ...]:
        return self._weights

    @property
    def running(self) -> bool:
        """True while a run is in progress."""
        return self._lock.locked()

    def run(
        self, options: ConsumeOptions, *, enable_signal_to_exit_gracefully: bool = False
    ) -> None:
        """Consume every queue until stopped (``consume_messages`` with every option of
        ``ConsumeOptions``, each applied to every queue, ``max_threads`` in total); signal
        handlers are off unless asked for.

        Raises:
            QueueUnavailableError: SQS refused one of the queues (the others were stopped).
            SqsxError: a queue of the group is already consuming.
        """
        from sqsx.limits import RunLimits
        from sqsx.sharing import HandlerPool
        from sqsx.stopping import StopRequests

        if not self._lock.acquire(blocking=False):
            raise SqsxError("this QueueGroup is already consuming messages in another thread")
        try:
            busy = [queue.url for queue in self._queues if queue._consumer.running]
            if busy:
                raise SqsxError(f"already consuming messages in another thread: {busy[0]}")
            limits = RunLimits(
                max_messages_total=options.max_messages_total,
                exit_when_idle_seconds=options.exit_when_idle_seconds,
            )
            pool = self._pool = HandlerPool(options.max_threads, self._weights, limits)
            requests = StopRequests(f"{len(self._queues)} queues")
            self._threads = {threading.get_ident()}
            try:
                with requests.watching(signals=enable_signal_to_exit_gracefully) as (stop, force):
                    pool.start()
                    errors = self._run_members(options, pool.seats, stop, force)
            finally:
                pool.close()
            self._forced = force.is_set() or any(q.forced_stop for q in self._queues)
            self._signals = tuple(requests.signals)
        finally:
            self._lock.release()
        if errors:
            raise errors[0]

    def _run_members(
        self,
        options: ConsumeOptions,
        seats: Sequence[Seat],
        stop: threading.Event,
        force: threading.Event,
    ) -> list[BaseException]:
        """Run each queue's engine in a thread of its own until all have ended, passing
        on stop requests; the errors that ended any of them."""
        errors: list[BaseException] = []

        def member(queue: BaseQueue, seat: Seat) -> None:
            try:
                queue._consumer.run(options, signals=False, seat=seat)
            except BaseException as err:  # the group must see it, then stop the others
                logger.error("consuming stopped: %s queue_url=%s", err, queue.url)
                errors.append(err)

        threads = [
            threading.Thread(target=member, args=(q, s), name="sqsx-group", daemon=True)
            for q, s in zip(self._queues, seats, strict=True)
        ]
        for thread in threads:
            thread.start()
            self._threads.add(thread.ident or 0)
        asked = 0  # what was passed on: 1 graceful stop, 2 stop without waiting
        while alive := [thread for thread in threads if thread.is_alive()]:
            wanted = 2 if force.is_set() else 1 if stop.is_set() or errors else 0
            if wanted > asked:
                for queue in self._queues:
                    queue.exit_gracefully(force=wanted > 1)
                asked = wanted
            alive[0].join(_TICK_SECONDS)
        return errors

    def exit_gracefully(self, *, force: bool = False) -> None:
        """Ask every queue of the group to stop (idempotent; safe from any thread and from
        a signal handler); ``force=True`` does not wait for running handlers."""
        for queue in self._queues:
            queue.exit_gracefully(force=force)

    @property
    def forced_stop(self) -> bool:
        """True when the last run stopped without waiting for running handlers."""
        return self._forced

    @property
    def stop_signals(self) -> tuple[int, ...]:
        """The signals received during the last run (with signal handlers on), in order."""
        return self._signals

    def stats(self) -> StatsSnapshot:
        """The counters of every queue, summed (latency p50 weighted, p95 and max the
        largest)."""
        snapshots = [queue.stats() for queue in self._queues]
        return sum_snapshots(snapshots, max(s.elapsed for s in snapshots))

    def stats_by_queue(self) -> dict[str, StatsSnapshot]:
        """Each queue's counters, by queue URL, in the group's order."""
        return {queue.url: queue.stats() for queue in self._queues}

    def close(self) -> None:
        """Stop consuming (if running) and wait for it to end; from a thread of the run
        (a handler...) it only asks (see ``Queue.close``)."""
        if not self.running:
            return
        self.exit_gracefully()
        pool, ident = self._pool, threading.get_ident()
        if ident not in self._threads and (pool is None or ident not in pool.thread_ids()):
            with self._lock:  # held by ``run`` until the run has ended: this waits for it
                pass
