"""Runs the records of one invocation on a reused thread pool, under Lambda's deadline.

Up to ``max_threads`` workers pull records in event order. Once recent invocations show
the records to be fast (their mean handler time times the record count within
``INLINE_BUDGET_SECONDS``), the invoking thread runs them inline, fanning out only what is
left when the budget is spent: a fast batch pays for no thread hand-off.

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

import enum
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqsx.caps import ConcurrencyCaps
from sqsx.dispatch import AbandonFn, Outcome
from sqsx.message import Message
from sqsx.ordering import GroupGate

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


class Fate(enum.Enum):
    """What became of a record in an invocation."""

    #: The core decided (the handler ran, or the record was judged unprocessable).
    DONE = "done"
    #: Not started: the deadline was near, or an earlier record of its FIFO group failed.
    SKIPPED = "skipped"
    #: Still running when the deadline guard stopped waiting for it.
    ABANDONED = "abandoned"


@dataclass(frozen=True, slots=True)
class RecordResult:
    """The fate of one record.

    Attributes:
        message: the record's envelope (id, receipt handle, receive count, group).
        fate: see ``Fate``.
        outcome: the core's ``Outcome`` when ``fate`` is ``DONE``, else ``None``.
        reason: why, for logs (never the message body).
        held_for: for a skipped record, the seconds until it is visible again: 0, or on a
            FIFO queue after a failure of its group, until after the failed record.
    """

    message: Message
    fate: Fate
    outcome: Outcome | None = None
    reason: str = ""
    held_for: int = 0

    @property
    def reported(self) -> bool:
        """True when the record goes into ``batchItemFailures`` (Lambda keeps it)."""
        return self.outcome is None or not self.outcome.delete

    @property
    def visibility_timeout(self) -> int | None:
        """Seconds to set the record's visibility timeout to; ``None`` for no change.

        A retried record gets its backoff, a skipped one ``held_for``, an abandoned one no
        change.
        """
        if self.fate is Fate.SKIPPED:
            return self.held_for
        return None if self.outcome is None else self.outcome.retry_after


@dataclass(frozen=True, slots=True)
class Job:
    """One record to run: its ``Message``, or an ``Outcome`` decided without running."""

    index: int
    message: Message
    preset: Outcome | None = None


def _group_of(job: Job) -> str | None:
    return job.message.group_id


class _Batch:
    """The records of one invocation: those waiting, running and done, under one lock.

    Workers ``pull`` jobs in event order, as the group gate of ``sqsx.ordering`` allows,
    until none is left; the deadline guard can ``give_up`` on the rest at any time.
    """

    def __init__(
        self,
        jobs: Sequence[Job],
        ordered: bool,
        clock: _Clock,
        blocked: dict[str | None, float],
        caps: ConcurrencyCaps | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.waiting: deque[Job] = deque()
        self.gate: GroupGate[Job] = GroupGate(fifo=ordered, group_of=_group_of, blocked=blocked)
        self.results: dict[int, RecordResult] = {}
        self.running: dict[int, Job] = {}
        self.clock = clock
        self.caps = caps if caps is not None and caps.active else None
        self.given_up = False
        self.abandoned = False  # a handler was abandoned past its time limit
        self.done = threading.Event()  # every job has a result
        self._total = len(jobs)
        for hold in self.gate.admit(jobs, self.waiting, time.monotonic()):
            group = hold.item.message.group_id
            reason = f"not run: a failed message of group {group} is not back yet"
            self._skip([hold.item], reason, hold.seconds)

    def pull(self) -> Job | None:
        """The next job to run, or ``None`` when this worker is done."""
        with self.lock:
            if self.given_up:
                return None
            if self.waiting and not self.clock.may_start():
                self._skip(list(self.waiting), self.clock.not_started, 0)
                self.waiting.clear()
                return None
            caps = self.caps
            job = self.gate.pick(self.waiting, None if caps is None else self._allowed)
            if job is not None:
                self.running[job.index] = job
                if caps is not None:
                    caps.started(job.message)
            return job

    def _allowed(self, job: Job) -> bool:
        return self.caps is None or self.caps.allowed(job.message)

    def finish(self, job: Job, result: RecordResult) -> None:
        with self.lock:
            if self.given_up or job.index not in self.running:
                return
            del self.running[job.index]
            if self.caps is not None:
                self.caps.finished(job.message)
            self.results[job.index] = result
            retry_after = result.visibility_timeout if result.reported else None
            held = self.gate.finish(job, retry_after, self.waiting, time.monotonic())
            if held:
                reason = f"not run: an earlier message of group {job.message.group_id} failed"
                for hold in held:
                    self.results[hold.item.index] = RecordResult(
                        hold.item.message, Fate.SKIPPED, None, reason, hold.seconds
                    )
            self._check_done()

    def _check_done(self) -> None:
        # Called with the lock held.
        if len(self.results) >= self._total:
            self.done.set()

    def give_up(self, running_reason: str) -> None:
        with self.lock:
            self.given_up = True
            for index, job in self.running.items():
                self.results[index] = RecordResult(
                    job.message, Fate.ABANDONED, None, running_reason
                )
            self._skip(list(self.waiting), self.clock.not_started, 0)
            self.waiting.clear()
            self.done.set()

    def _skip(self, jobs: Sequence[Job], reason: str, seconds: int) -> None:
        for job in jobs:
            self.results[job.index] = RecordResult(job.message, Fate.SKIPPED, None, reason, seconds)
        self._check_done()


class _Clock:
    """Lambda's remaining time, read through the context (no context: no deadline)."""

    def __init__(self, lambda_context: Any, margin_ms: int) -> None:
        remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
        self._remaining: Callable[[], int] | None = remaining if callable(remaining) else None
        self.margin_ms = margin_ms
        self.not_started = f"not started: less than {margin_ms} ms left"

    def may_start(self) -> bool:
        return self._remaining is None or self._remaining() > self.margin_ms

    def seconds_to_give_up(self) -> float | None:
        if self._remaining is None:
            return None
        return max(self._remaining() - self.margin_ms / 2, 0) / 1000

    def limit_cap(self) -> float | None:
        """Seconds a time-limited handler may run at most: until the margin begins."""
        if self._remaining is None:
            return None
        return max(self._remaining() - self.margin_ms, 0) / 1000


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

    def run(
        self, jobs: Sequence[Job], lambda_context: Any, *, ordered_groups: bool
    ) -> list[RecordResult]:
        """Run ``jobs`` and return one result per job, in the same order.

        Args:
            jobs: the records of one invocation, in event order (``Job.index`` 0, 1...).
            lambda_context: handed to the core and read for the deadline.
            ordered_groups: FIFO semantics (the group rule of ``sqsx.ordering``).
        """
        clock = _Clock(lambda_context, self._margin_ms)
        caps = None if self._caps is None else ConcurrencyCaps(self._caps)
        if not ordered_groups:
            return self._run(_Batch(jobs, False, clock, {}, caps), jobs, lambda_context)
        with self._blocked_lock:  # FIFO invocations share the blocked groups: one at a time
            batch = _Batch(jobs, True, clock, self._blocked, caps)
            return self._run(batch, jobs, lambda_context)

    def _run(self, batch: _Batch, jobs: Sequence[Job], lambda_context: Any) -> list[RecordResult]:
        if self._max_threads == 1:
            self._work(batch, lambda_context)
            if batch.abandoned:  # its replacement ran the rest
                self._wait(batch)
        else:
            expected = None if self._mean is None else self._mean * len(jobs)
            if expected is not None and expected <= INLINE_BUDGET_SECONDS:
                # Records known to be fast run inline: a thread hand-off would cost more than
                # it saves. Past the budget (a slow record after all), the rest fan out.
                self._work(batch, lambda_context, time.perf_counter() + INLINE_BUDGET_SECONDS)
            if not batch.done.is_set():
                # A few workers pull jobs from the batch: one future per worker, not per
                # record, keeps the pool's cost off every record.
                pool = self._executor()
                for _ in range(min(self._max_threads, len(batch.waiting) or 1)):
                    pool.submit(self._work, batch, lambda_context)
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

    def _wait(self, batch: _Batch) -> None:
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

    def _work(self, batch: _Batch, lambda_context: Any, until: float | None = None) -> None:
        """Run jobs until none is left (or, inline, until ``time.perf_counter()`` passes
        ``until``, leaving the rest to the pool)."""
        while (until is None or time.perf_counter() < until) and (job := batch.pull()) is not None:
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
        self, batch: _Batch, job: Job, lambda_context: Any, message: Message, outcome: Outcome
    ) -> None:
        """A record's handler abandoned past its time limit: it is reported with its backoff,
        and a new thread takes over the rest of the batch."""
        batch.abandoned = True
        batch.finish(job, RecordResult(message, Fate.DONE, outcome, outcome.reason))
        threading.Thread(
            target=self._work, args=(batch, lambda_context), name="sqsx-lambda-spare", daemon=True
        ).start()
