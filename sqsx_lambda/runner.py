"""Runs the records of one invocation on a reused thread pool, under Lambda's deadline.

Records are split into lanes. On a standard queue every record is a lane of its own, so
up to ``max_threads`` of them run at once. On a FIFO queue a lane is one message group, in
event order: groups run side by side, the records of a group one after another, and once a
record of a group fails the rest of that group is skipped (reported without running), so
SQS redelivers the group in order.

The deadline guard reads ``context.get_remaining_time_in_millis()``. With less than
``deadline_margin_ms`` left, no record starts: the rest are skipped. Records still running
when only half the margin is left are abandoned: reported as failures, their visibility
left alone (their handler may still be running, so they must not reappear at once). Their
threads stay busy, so the next invocation gets a fresh pool.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqsx.backoff import BackoffPolicy
from sqsx.dispatch import Outcome, Verdict
from sqsx.message import Message

__all__ = ["BatchRunner", "Fate", "Job", "RecordResult"]

logger = logging.getLogger(__name__)

#: Runs one message through the core: ``queue.process`` or ``Dispatcher.process``.
ProcessFn = Callable[[Message, Any], Outcome]
#: Wraps the processing of one message (structured log keys, for instance).
RecordScope = Callable[[Message], AbstractContextManager[object]]


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
    """

    message: Message
    fate: Fate
    outcome: Outcome | None = None
    reason: str = ""

    @property
    def reported(self) -> bool:
        """True when the record goes into ``batchItemFailures`` (Lambda keeps it)."""
        return self.outcome is None or not self.outcome.delete

    @property
    def visibility_timeout(self) -> int | None:
        """Seconds to set the record's visibility timeout to; ``None`` for no change.

        A retried record gets its backoff, a skipped one 0 (it comes back at once), an
        abandoned one no change.
        """
        if self.fate is Fate.SKIPPED:
            return 0
        return None if self.outcome is None else self.outcome.retry_after


@dataclass(frozen=True, slots=True)
class Job:
    """One record to run: its ``Message``, or an ``Outcome`` decided without running."""

    message: Message
    preset: Outcome | None = None


@dataclass(slots=True)
class _Lane:
    jobs: list[tuple[int, Job]]
    ordered: bool
    lock: threading.Lock  # one per invocation, shared by its lanes: cheap to hold briefly
    results: dict[int, RecordResult] = field(default_factory=dict)
    current: int | None = None
    given_up: bool = False

    def skip_rest(self, reason: str) -> None:
        for index, job in self.jobs:
            if index not in self.results:
                self.results[index] = RecordResult(job.message, Fate.SKIPPED, None, reason)

    def give_up(self, running_reason: str, waiting_reason: str) -> None:
        with self.lock:
            self.given_up = True
            if self.current is not None:
                message = dict(self.jobs)[self.current].message
                self.results[self.current] = RecordResult(
                    message, Fate.ABANDONED, None, running_reason
                )
            self.skip_rest(waiting_reason)


class _Clock:
    """Lambda's remaining time, read through the context (no context: no deadline)."""

    def __init__(self, lambda_context: Any, margin_ms: int) -> None:
        remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
        self._remaining: Callable[[], int] | None = remaining if callable(remaining) else None
        self.margin_ms = margin_ms

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
        backoff: delays for a record whose processing raised out of the core (a bug).
        max_threads: records running at once (1 runs them inline, in the calling thread).
        deadline_margin_ms: no record starts with less than this many milliseconds left.
        scope: optional context manager entered around each record's processing.
    """

    def __init__(
        self,
        process: ProcessFn,
        backoff: BackoffPolicy,
        *,
        max_threads: int,
        deadline_margin_ms: int,
        scope: RecordScope | None = None,
    ) -> None:
        self._process = process
        self._backoff = backoff
        self._max_threads = max_threads
        self._margin_ms = deadline_margin_ms
        self._scope = scope
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def run(
        self, jobs: Sequence[Job], lambda_context: Any, *, ordered_groups: bool
    ) -> list[RecordResult]:
        """Run ``jobs`` and return one result per job, in the same order.

        Args:
            jobs: the records of one invocation, in event order.
            lambda_context: handed to the core and read for the deadline.
            ordered_groups: FIFO semantics (one lane per message group).
        """
        clock = _Clock(lambda_context, self._margin_ms)
        lanes = _lanes(jobs, ordered_groups)
        if self._max_threads == 1:
            for lane in lanes:
                self._run_lane(lane, lambda_context, clock)
        else:
            # A few workers pull lanes from one iterator: one future per worker, not per
            # record, keeps the pool's cost off every record.
            queue = iter(lanes)
            take = threading.Lock()

            def work() -> None:
                while True:
                    with take:
                        lane = next(queue, None)
                    if lane is None:
                        return
                    self._run_lane(lane, lambda_context, clock)

            pool = self._executor()
            workers = [pool.submit(work) for _ in range(min(self._max_threads, len(lanes)))]
            _, late = wait(workers, timeout=clock.seconds_to_give_up())
            if late:
                for lane in lanes:  # finished lanes keep their results
                    lane.give_up(
                        f"still running with less than {self._margin_ms // 2} ms left",
                        self._not_started(),
                    )
                self.close()  # its threads may stay busy: later invocations get a fresh pool
        results: dict[int, RecordResult] = {}
        for lane in lanes:
            with lane.lock:
                results.update(lane.results)
        return [
            results.get(index)
            or RecordResult(job.message, Fate.ABANDONED, None, "its thread ended abnormally")
            for index, job in enumerate(jobs)
        ]

    def close(self) -> None:
        """Let go of the thread pool (idempotent): records still queued are not run, running
        ones finish on their own; the next ``run`` starts a new pool."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _not_started(self) -> str:
        return f"not started: less than {self._margin_ms} ms left"

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._max_threads, thread_name_prefix="sqsx-lambda")
            return self._pool

    def _run_lane(self, lane: _Lane, lambda_context: Any, clock: _Clock) -> None:
        for index, job in lane.jobs:
            with lane.lock:
                if lane.given_up:
                    return
                if not clock.may_start():
                    lane.skip_rest(self._not_started())
                    return
                lane.current = index
            result = self._run_one(job, lambda_context)
            with lane.lock:
                if lane.given_up:
                    return
                lane.results[index] = result
                lane.current = None
                if lane.ordered and result.reported:
                    lane.skip_rest(
                        f"not run: an earlier message of group {job.message.group_id} failed"
                    )
                    return

    def _run_one(self, job: Job, lambda_context: Any) -> RecordResult:
        if job.preset is not None:
            return RecordResult(job.message, Fate.DONE, job.preset, job.preset.reason)
        try:
            if self._scope is None:
                outcome = self._process(job.message, lambda_context)
            else:
                with self._scope(job.message):
                    outcome = self._process(job.message, lambda_context)
        except Exception as err:  # the core never raises for a message: a bug, kept contained
            logger.exception("processing escaped the core message_id=%s", job.message.message_id)
            delay = self._backoff.delay(job.message.receive_count)
            outcome = Outcome(Verdict.RETRIED, delay, f"processing raised {type(err).__name__}")
        return RecordResult(job.message, Fate.DONE, outcome, outcome.reason)


def _lanes(jobs: Sequence[Job], ordered_groups: bool) -> list[_Lane]:
    lock = threading.Lock()
    if not ordered_groups:
        return [_Lane([(index, job)], False, lock) for index, job in enumerate(jobs)]
    groups: dict[str | None, list[tuple[int, Job]]] = {}
    for index, job in enumerate(jobs):
        groups.setdefault(job.message.group_id, []).append((index, job))
    return [_Lane(members, True, lock) for members in groups.values()]
