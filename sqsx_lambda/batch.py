"""The records of one invocation: what each became (``Fate``, ``RecordResult``), the jobs
to run, and the shared state the runner's workers pull them from (``Batch``), under
Lambda's deadline (``Clock``)."""

from __future__ import annotations

import contextvars
import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqsx.caps import ConcurrencyCaps
from sqsx.dispatch import Outcome
from sqsx.message import Message
from sqsx.ordering import GroupGate

__all__ = ["Batch", "Clock", "Fate", "Job", "RecordResult", "log_counts", "log_summary"]

# The invocation summary is the handler's line, whichever module writes it.
_summary_logger = logging.getLogger("sqsx_lambda.handler")


class Fate(enum.Enum):
    """What became of a record in an invocation."""

    #: The core decided (the handler ran, or the record was judged unprocessable).
    DONE = "done"
    #: Not started: the deadline was near, or an earlier record of its FIFO group failed.
    SKIPPED = "skipped"
    #: Still running when the deadline guard stopped waiting for it.
    ABANDONED = "abandoned"


@dataclass(slots=True)  # not frozen: built per message, and frozen costs 3x
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


@dataclass(slots=True)  # not frozen: built per message, and frozen costs 3x
class Job:
    """One record to run: its ``Message``, or an ``Outcome`` decided without running."""

    index: int
    message: Message
    preset: Outcome | None = None


def _group_of(job: Job) -> str | None:
    return job.message.group_id


class Batch:
    """The records of one invocation: those waiting, running and done, under one lock.

    Workers ``pull`` jobs in event order, as the group gate of ``sqsx.ordering`` allows,
    until none is left; the deadline guard can ``give_up`` on the rest at any time.
    """

    def __init__(
        self,
        jobs: Sequence[Job],
        ordered: bool,
        clock: Clock,
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
        #: The invoking thread's context variables (a tracing span current there, say):
        #: every thread that runs the batch's records runs them in a copy of it.
        self.context = contextvars.copy_context()
        self._total = len(jobs)
        self.size = len(jobs)
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

    def running_job(self, message: Message) -> Job | None:
        """The running job of ``message`` (which a hook may have resolved into a new
        object: matched by id and receipt handle)."""
        key = (message.message_id, message.receipt_handle)
        with self.lock:
            return next(
                (
                    job
                    for job in self.running.values()
                    if (job.message.message_id, job.message.receipt_handle) == key
                ),
                None,
            )

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


class Clock:
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


def log_summary(results: Sequence[RecordResult], url: str) -> None:
    """Log what became of an invocation's records: the skipped and the abandoned (WARNING),
    and one INFO summary line."""
    skipped: list[str] = []
    abandoned: list[str] = []
    reported = 0
    for r in results:
        if r.fate is Fate.SKIPPED:
            skipped.append(r.message.message_id)
        elif r.fate is Fate.ABANDONED:
            abandoned.append(r.message.message_id)
        reported += r.reported
    if skipped:
        reasons = sorted({r.reason for r in results if r.fate is Fate.SKIPPED})
        _summary_logger.warning(
            "%d records not run (%s), made visible again message_ids=%s queue_url=%s",
            len(skipped),
            "; ".join(reasons),
            ",".join(skipped),
            url,
        )
    if abandoned:
        _summary_logger.warning(
            "%d records still running at the deadline, reported as failures; they reappear "
            "after the queue's visibility timeout message_ids=%s queue_url=%s",
            len(abandoned),
            ",".join(abandoned),
            url,
        )
    log_counts(len(results), reported, url)


def log_counts(records: int, reported: int, url: str) -> None:
    """The INFO summary line of an invocation: records deleted and reported."""
    _summary_logger.info(
        "batch of %d records: %d deleted, %d reported queue_url=%s",
        records,
        records - reported,
        reported,
        url,
    )
