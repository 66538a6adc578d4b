"""Runs the records of one invocation on a reused thread pool, under Lambda's deadline.

Up to ``max_threads`` workers pull records in event order. Once recent invocations show
the records to be fast (their typical handler time, the median of a batch averaged over
recent invocations, times the record count within ``INLINE_BUDGET_SECONDS``), the invoking
thread runs them inline, and fans out what is left only once they prove slow (the budget
is spent): a fast batch pays for no thread hand-off. The first invocation, and any after a
record was left running, fan out from the start.

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
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqsx.abandon import AbandonFn
from sqsx.caps import ConcurrencyCaps
from sqsx.dispatch import Outcome
from sqsx.lanes import AsyncLane, CoroutineRun
from sqsx.message import Message
from sqsx_lambda.batch import Batch, Clock, Fate, Job, RecordResult

__all__ = ["BatchRunner", "Fate", "Job", "RecordResult", "typical"]

logger = logging.getLogger(__name__)

#: Records expected to take less than this (seconds, in all) run inline, in the invoking
#: thread, before any fan-out; the expectation is the typical handler time of recent
#: invocations (see ``typical``) times the record count.
INLINE_BUDGET_SECONDS = 0.002
_WEIGHT = 0.3  # of the newest batch in the running mean
_OVERHEAD_ALLOWANCE_SECONDS = 100e-6  # per record, before the sentinel fans out

#: Runs one message through the core (``Dispatcher.begin``, with the runtime's hooks):
#: ``fn(message, lambda_context, on_abandon, limit_cap) -> Outcome`` (or the
#: ``CoroutineRun`` of an ``async def`` handler on the async lane).
ProcessFn = Callable[
    [Message, Any, AbandonFn, Callable[[], "float | None"]], "Outcome | CoroutineRun"
]


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
        lane: AsyncLane | None = None,
    ) -> None:
        self._process = process
        self._lane = lane  # its coroutines are cancelled when the deadline guard gives up
        self._caps = caps
        self._max_threads = max_threads
        self._margin_ms = deadline_margin_ms
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # FIFO groups whose failed message is not back yet, kept across invocations
        self._blocked: dict[str | None, float] = {}
        self._blocked_lock = threading.Lock()  # one invocation at a time uses them
        self._mean: float | None = None  # seconds per record, over recent invocations

    def run(
        self,
        jobs: Sequence[Job],
        lambda_context: Any,
        *,
        ordered_groups: bool,
        fan_out: bool = False,
    ) -> list[RecordResult]:
        """Run ``jobs`` and return one result per job, in the same order.

        Args:
            jobs: the records of one invocation, in event order (``Job.index`` 0, 1...).
            lambda_context: handed to the core and read for the deadline.
            ordered_groups: FIFO semantics (the group rule of ``sqsx.ordering``).
            fan_out: hand every job to the pool at once (they proved slow inline).
        """
        clock = Clock(lambda_context, self._margin_ms)
        caps = None if self._caps is None else ConcurrencyCaps(self._caps)
        if not ordered_groups:
            return self._run(Batch(jobs, False, clock, {}, caps), jobs, lambda_context, fan_out)
        with self._blocked_lock:  # FIFO invocations share the blocked groups: one at a time
            batch = Batch(jobs, True, clock, self._blocked, caps)
            return self._run(batch, jobs, lambda_context, fan_out)

    def inline_until(self, records: int, *, ordered_groups: bool) -> float | None:
        """Until when (``time.perf_counter()``) ``records`` may run inline, in the invoking
        thread, before what is left fans out; ``None`` to fan out from the start (no mean
        yet, or too slow a one) or when a FIFO group is held back from an earlier one."""
        if ordered_groups and self._blocked:
            return None
        if self._max_threads == 1:
            return math.inf
        if self._mean is None or self._mean * records > INLINE_BUDGET_SECONDS:
            return None
        return time.perf_counter() + INLINE_BUDGET_SECONDS + records * _OVERHEAD_ALLOWANCE_SECONDS

    def learn(self, mean_seconds: float) -> None:
        """Fold an invocation's typical handler time per record into the running mean."""
        self._mean = (
            mean_seconds
            if self._mean is None
            else self._mean + _WEIGHT * (mean_seconds - self._mean)
        )

    def _run(
        self, batch: Batch, jobs: Sequence[Job], lambda_context: Any, fan_out: bool = False
    ) -> list[RecordResult]:
        started = time.perf_counter()
        if self._max_threads == 1:
            self._work(batch, lambda_context)
            if not batch.done.is_set():  # coroutines still running, or a replacement thread
                self._wait(batch)
        else:
            expected = None if self._mean is None or fan_out else self._mean * len(jobs)
            if expected is not None and expected <= INLINE_BUDGET_SECONDS:
                # Records known to be fast run inline: a thread hand-off would cost more than
                # it saves. Once they prove slow after all (the budget is spent, with the
                # overhead allowance), what is left fans out.
                patience = INLINE_BUDGET_SECONDS + len(jobs) * _OVERHEAD_ALLOWANCE_SECONDS
                self._work(batch, lambda_context, time.perf_counter() + patience)
            self._fan_out(batch, lambda_context)
            if not batch.done.is_set():
                self._wait(batch)
            if batch.given_up or batch.abandoned:
                self.close()  # its threads may stay busy: later invocations get a fresh pool
        with batch.lock:
            results = dict(batch.results)
        self._learn(results.values(), time.perf_counter() - started)
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
            if self._lane is not None:
                self._lane.cancel_all()  # one invocation at a time: its coroutines only

    def _learn(self, results: Iterable[RecordResult], wall_seconds: float) -> None:
        """Fold this batch's typical handler time into the running mean (warm
        invocations); a record left running (abandoned) counts as taking the whole batch's
        time, and makes the batch's mean count."""
        times = []
        abandoned = False
        for r in results:
            if r.outcome is not None:
                times.append(r.outcome.handler_seconds)
            elif r.fate is Fate.ABANDONED:
                times.append(wall_seconds)
                abandoned = True
        if times:
            self.learn(sum(times) / len(times) if abandoned else typical(times))

    def _fan_out(self, batch: Batch, lambda_context: Any) -> None:
        """Hand the batch's waiting jobs to the pool: a few workers pull them, one future
        per worker rather than per record."""
        with batch.lock:
            waiting = len(batch.waiting)
        if not waiting:
            return
        pool = self._executor()
        for _ in range(min(self._max_threads, waiting)):
            pool.submit(batch.context.copy().run, self._work, batch, lambda_context)

    def _work(self, batch: Batch, lambda_context: Any, until: float | None = None) -> None:
        """Run the batch's jobs until none is left to start (or, inline, until
        ``time.perf_counter()`` passes ``until``: the rest is then fanned out)."""
        on_abandon = functools.partial(self._abandoned, batch, lambda_context)
        while (until is None or time.perf_counter() < until) and (job := batch.pull()) is not None:
            if job.preset is not None:
                outcome = job.preset
            else:
                try:
                    begun = self._process(
                        job.message, lambda_context, on_abandon, batch.clock.limit_cap
                    )
                except BaseException:  # a bug (the core never raises): keep the batch going
                    logger.exception(
                        "processing escaped the core message_id=%s", job.message.message_id
                    )
                    reason = "its thread ended abnormally"
                    batch.finish(job, RecordResult(job.message, Fate.ABANDONED, None, reason))
                    continue
                if isinstance(begun, CoroutineRun):  # settled when its coroutine ends
                    begun.add_done_callback(
                        functools.partial(self._coroutine_ended, batch, job, lambda_context)
                    )
                    continue
                outcome = begun
                if outcome.late:  # this thread was abandoned and replaced
                    return
            batch.finish(job, RecordResult(job.message, Fate.DONE, outcome, outcome.reason))

    def _coroutine_ended(
        self, batch: Batch, job: Job, lambda_context: Any, run: CoroutineRun
    ) -> None:
        """In the loop's thread: report the record; if jobs still wait (a FIFO group or a
        task cap held them back), a pool thread takes them up."""
        outcome = run.result()
        batch.finish(job, RecordResult(job.message, Fate.DONE, outcome, outcome.reason))
        if batch.waiting and not batch.given_up:
            self._executor().submit(batch.context.copy().run, self._work, batch, lambda_context)

    def _abandoned(
        self, batch: Batch, lambda_context: Any, message: Message, outcome: Outcome
    ) -> None:
        """A record's handler abandoned past its time limit: it is reported with its backoff,
        and a new thread takes over the rest of the batch."""
        batch.abandoned = True
        job = batch.running_job(message)
        if job is not None:
            batch.finish(job, RecordResult(message, Fate.DONE, outcome, outcome.reason))
        threading.Thread(
            target=batch.context.copy().run,
            args=(self._work, batch, lambda_context),
            name="sqsx-lambda-spare",
            daemon=True,
        ).start()


def typical(seconds: list[float]) -> float:
    """The (low) median of records' handler times: what the next records are expected to
    take. Not the mean: a record that waited for the GIL on a busy pool (a no-op handler on
    10 threads can measure a millisecond), or whose thread the OS preempted, would count as
    slow and keep a batch of fast records off the inline path."""
    return sorted(seconds)[(len(seconds) - 1) // 2]
