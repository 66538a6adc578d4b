"""Runs the records of one invocation on a reused thread pool, under Lambda's deadline.

Up to ``max_threads`` workers pull records in event order. Once recent invocations show
the records to be fast (their mean handler time times the record count within
``INLINE_BUDGET_SECONDS``), the invoking thread runs them inline, and a sentinel thread
fans out what is left only if the batch outlasts that budget (a slow or blocked record):
a fast batch pays for no thread hand-off.

On a FIFO queue the group rule of ``sqsx.ordering`` (the same as the polling worker's)
applies: groups run side by side,
the records of a group one after another, and once a record of a group fails the rest of
that group is skipped (reported without running) and hidden until after the failed one,
so SQS redelivers the group in order.

The deadline guard reads ``context.get_remaining_time_in_millis()``. With less than
``deadline_margin_ms`` left, no record starts: the rest are skipped. Records still running
when only half the margin is left are abandoned: reported as failures, their visibility
left alone (their handler may still be running, so they must not reappear at once). Their
threads stay busy, so the next invocation gets a fresh pool.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqsx.caps import ConcurrencyCaps
from sqsx.dispatch import AbandonFn, Outcome
from sqsx.message import Message
from sqsx_lambda.batch import Batch, Clock, Fate, Job, RecordResult

__all__ = ["BatchRunner", "Fate", "Job", "RecordResult"]

logger = logging.getLogger(__name__)

#: Records expected to take less than this (seconds, in all) run inline, in the invoking
#: thread, before any fan-out; the expectation is the mean handler time of recent
#: invocations times the record count.
INLINE_BUDGET_SECONDS = 0.002
_WEIGHT = 0.3  # of the newest batch in the running mean

#: Runs one message through the core (``Dispatcher.process``, with the runtime's hooks):
#: ``fn(message, lambda_context, on_abandon, limit_cap) -> Outcome``.
ProcessFn = Callable[[Message, Any, AbandonFn, "float | None"], Outcome]


class _Sentinel:
    """Watches a batch run inline: if it is not done within ``INLINE_BUDGET_SECONDS``, what
    is left fans out to the pool. One daemon thread, started on first use, armed once per
    inline batch (a lock and a notify: far cheaper than a thread hand-off per record).
    """

    def __init__(self, fan_out: Callable[[Batch, Any], None]) -> None:
        self._fan_out = fan_out
        self._ready = threading.Condition()
        self._armed: tuple[Batch, Any] | None = None
        self._thread: threading.Thread | None = None

    def arm(self, batch: Batch, lambda_context: Any) -> None:
        with self._ready:
            self._armed = (batch, lambda_context)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="sqsx-lambda-sentinel", daemon=True
                )
                self._thread.start()
            self._ready.notify()

    def _watch(self) -> None:
        while True:
            with self._ready:
                while self._armed is None:
                    self._ready.wait()
                batch, lambda_context = self._armed
                self._armed = None
            if not batch.done.wait(INLINE_BUDGET_SECONDS):
                self._fan_out(batch, lambda_context)


class BatchRunner:
    """Runs jobs through the core on a thread pool created once and reused.

    Args:
        process: the core, ``fn(message, lambda_context) -> Outcome``.
        max_threads: records running at once (1 runs them inline, in the calling thread).
        deadline_margin_ms: no record starts with less than this many milliseconds left.
    """

    def __init__(
        self,
        process: ProcessFn,
        *,
        max_threads: int,
        deadline_margin_ms: int,
        caps: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self._process = process
        self._caps = caps
        self._max_threads = max_threads
        self._margin_ms = deadline_margin_ms
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # FIFO groups whose failed message is not back yet, kept across invocations
        self._blocked: dict[str | None, float] = {}
        self._blocked_lock = threading.Lock()  # one invocation at a time uses them
        self._mean: float | None = None  # seconds per record, over recent invocations
        self._sentinel = _Sentinel(self._fan_out)

    def run(
        self, jobs: Sequence[Job], lambda_context: Any, *, ordered_groups: bool
    ) -> list[RecordResult]:
        """Run ``jobs`` and return one result per job, in the same order.

        Args:
            jobs: the records of one invocation, in event order (``Job.index`` 0, 1...).
            lambda_context: handed to the core and read for the deadline.
            ordered_groups: FIFO semantics (the group rule of ``sqsx.ordering``).
        """
        clock = Clock(lambda_context, self._margin_ms)
        caps = None if self._caps is None else ConcurrencyCaps(self._caps)
        if not ordered_groups:
            return self._run(Batch(jobs, False, clock, {}, caps), jobs, lambda_context)
        with self._blocked_lock:  # FIFO invocations share the blocked groups: one at a time
            batch = Batch(jobs, True, clock, self._blocked, caps)
            return self._run(batch, jobs, lambda_context)

    def _run(self, batch: Batch, jobs: Sequence[Job], lambda_context: Any) -> list[RecordResult]:
        if self._max_threads == 1:
            self._work(batch, lambda_context)
            if batch.abandoned:  # its replacement ran the rest
                self._wait(batch)
        else:
            expected = None if self._mean is None else self._mean * len(jobs)
            if expected is not None and expected <= INLINE_BUDGET_SECONDS:
                # Records known to be fast run inline: a thread hand-off would cost more than
                # it saves. Should they take longer than the budget after all (a slow or a
                # blocked record), the sentinel hands what is left to the pool.
                self._sentinel.arm(batch, lambda_context)
                self._work(batch, lambda_context)
            else:
                self._fan_out(batch, lambda_context)
            if not batch.done.is_set():
                self._wait(batch)
            if batch.given_up or batch.abandoned:
                self.close()  # its threads may stay busy: later invocations get a fresh pool
        with batch.lock:
            results = dict(batch.results)
        self._learn(results.values())
        return [
            results.get(job.index)
            or RecordResult(job.message, Fate.ABANDONED, None, "its thread ended abnormally")
            for job in jobs
        ]

    def close(self) -> None:
        """Let go of the thread pool (idempotent): records still queued are not run, running
        ones finish on their own; the next ``run`` starts a new pool."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._max_threads, thread_name_prefix="sqsx-lambda")
            return self._pool

    def _wait(self, batch: Batch) -> None:
        """Wait for every job to have a result, up to the deadline guard; then give up on
        those still running (an abandoned worker thread may never finish)."""
        if not batch.done.wait(batch.clock.seconds_to_give_up()) and not batch.done.is_set():
            batch.give_up(f"still running with less than {self._margin_ms // 2} ms left")

    def _learn(self, results: Iterable[RecordResult]) -> None:
        """Fold this batch's mean handler time into the running mean (warm invocations)."""
        times = [r.outcome.handler_seconds for r in results if r.outcome is not None]
        if times:
            mean = sum(times) / len(times)
            self._mean = mean if self._mean is None else self._mean + _WEIGHT * (mean - self._mean)

    def _fan_out(self, batch: Batch, lambda_context: Any) -> None:
        """Hand the batch's waiting jobs to the pool: a few workers pull them, one future
        per worker rather than per record."""
        with batch.lock:
            waiting = len(batch.waiting)
        if not waiting:
            return
        pool = self._executor()
        for _ in range(min(self._max_threads, waiting)):
            pool.submit(self._work, batch, lambda_context)

    def _work(self, batch: Batch, lambda_context: Any) -> None:
        """Run the batch's jobs until none is left to start."""
        while (job := batch.pull()) is not None:
            if job.preset is not None:
                outcome = job.preset
            else:
                on_abandon = functools.partial(self._abandoned, batch, job, lambda_context)
                try:
                    outcome = self._process(
                        job.message, lambda_context, on_abandon, batch.clock.limit_cap()
                    )
                except BaseException:  # a bug (the core never raises): keep the batch going
                    logger.exception(
                        "processing escaped the core message_id=%s", job.message.message_id
                    )
                    reason = "its thread ended abnormally"
                    batch.finish(job, RecordResult(job.message, Fate.ABANDONED, None, reason))
                    continue
                if outcome.late:  # this thread was abandoned and replaced
                    return
            batch.finish(job, RecordResult(job.message, Fate.DONE, outcome, outcome.reason))

    def _abandoned(
        self, batch: Batch, job: Job, lambda_context: Any, message: Message, outcome: Outcome
    ) -> None:
        """A record's handler abandoned past its time limit: it is reported with its backoff,
        and a new thread takes over the rest of the batch."""
        batch.abandoned = True
        batch.finish(job, RecordResult(message, Fate.DONE, outcome, outcome.reason))
        threading.Thread(
            target=self._work, args=(batch, lambda_context), name="sqsx-lambda-spare", daemon=True
        ).start()
