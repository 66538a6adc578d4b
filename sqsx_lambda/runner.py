"""Runs the records of one invocation on a reused thread pool, under Lambda's deadline.

Up to ``max_threads`` workers pull records in event order. On a FIFO queue the group rule
of ``sqsx.ordering`` (the same as the polling worker's) applies: groups run side by side,
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
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from sqsx.dispatch import Outcome
from sqsx.message import Message
from sqsx.ordering import GroupGate

__all__ = ["BatchRunner", "Fate", "Job", "RecordResult"]

#: Runs one message through the core (``Dispatcher.process``, with the runtime's hooks).
ProcessFn = Callable[[Message, Any], Outcome]


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
    ) -> None:
        self.lock = threading.Lock()
        self.waiting: deque[Job] = deque()
        self.gate: GroupGate[Job] = GroupGate(fifo=ordered, group_of=_group_of, blocked=blocked)
        self.results: dict[int, RecordResult] = {}
        self.running: dict[int, Job] = {}
        self.clock = clock
        self.given_up = False
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
            job = self.gate.pick(self.waiting)
            if job is not None:
                self.running[job.index] = job
            return job

    def finish(self, job: Job, result: RecordResult) -> None:
        with self.lock:
            if self.given_up:
                return
            del self.running[job.index]
            self.results[job.index] = result
            retry_after = result.visibility_timeout if result.reported else None
            held = self.gate.finish(job, retry_after, self.waiting, time.monotonic())
            if held:
                reason = f"not run: an earlier message of group {job.message.group_id} failed"
                for hold in held:
                    self.results[hold.item.index] = RecordResult(
                        hold.item.message, Fate.SKIPPED, None, reason, hold.seconds
                    )

    def give_up(self, running_reason: str) -> None:
        with self.lock:
            self.given_up = True
            for index, job in self.running.items():
                self.results[index] = RecordResult(
                    job.message, Fate.ABANDONED, None, running_reason
                )
            self._skip(list(self.waiting), self.clock.not_started, 0)
            self.waiting.clear()

    def _skip(self, jobs: Sequence[Job], reason: str, seconds: int) -> None:
        for job in jobs:
            self.results[job.index] = RecordResult(job.message, Fate.SKIPPED, None, reason, seconds)


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


class BatchRunner:
    """Runs jobs through the core on a thread pool created once and reused.

    Args:
        process: the core, ``fn(message, lambda_context) -> Outcome``.
        max_threads: records running at once (1 runs them inline, in the calling thread).
        deadline_margin_ms: no record starts with less than this many milliseconds left.
    """

    def __init__(self, process: ProcessFn, *, max_threads: int, deadline_margin_ms: int) -> None:
        self._process = process
        self._max_threads = max_threads
        self._margin_ms = deadline_margin_ms
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        # FIFO groups whose failed message is not back yet, kept across invocations
        self._blocked: dict[str | None, float] = {}
        self._blocked_lock = threading.Lock()  # one invocation at a time uses them

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
        if not ordered_groups:
            return self._run(_Batch(jobs, False, clock, {}), jobs, lambda_context)
        with self._blocked_lock:  # FIFO invocations share the blocked groups: one at a time
            return self._run(_Batch(jobs, True, clock, self._blocked), jobs, lambda_context)

    def _run(self, batch: _Batch, jobs: Sequence[Job], lambda_context: Any) -> list[RecordResult]:
        if self._max_threads == 1:
            self._work(batch, lambda_context)
        else:
            # A few workers pull jobs from the batch: one future per worker, not per
            # record, keeps the pool's cost off every record.
            pool = self._executor()
            workers = [
                pool.submit(self._work, batch, lambda_context)
                for _ in range(min(self._max_threads, len(jobs)))
            ]
            _, late = wait(workers, timeout=batch.clock.seconds_to_give_up())
            if late:
                batch.give_up(f"still running with less than {self._margin_ms // 2} ms left")
                self.close()  # its threads may stay busy: later invocations get a fresh pool
        with batch.lock:
            results = dict(batch.results)
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

    def _work(self, batch: _Batch, lambda_context: Any) -> None:
        while (job := batch.pull()) is not None:
            if job.preset is not None:
                outcome = job.preset
            else:
                outcome = self._process(job.message, lambda_context)
            batch.finish(job, RecordResult(job.message, Fate.DONE, outcome, outcome.reason))
