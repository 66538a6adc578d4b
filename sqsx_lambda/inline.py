"""The inline pass: an invocation's records, one after another in the invoking thread,
each in one pass through the core's plain lane (``Dispatcher.plain_lane``).

``LambdaHandler`` takes it when nothing runs around a handler (no hooks that observe or
resolve messages, no time limit, no concurrency cap, no ``async def`` handler; EMF metrics
and the ``tracing=True`` invocation span are per invocation and keep it) and the runner
expects the records to be fast (``BatchRunner.inline_until``: one
thread, or a recent typical handler time within the inline budget). Each record is converted
(``usual_to_boto3``, or ``read_record`` for an unusual one) and run through the lane's
``attempt``: a record that succeeds is kept as the message its handler saw and its seconds,
any other is judged (``judge``) and kept as its ``Message`` and ``Outcome``. While every
record is deleted, nothing else is built (no ``Job``, ``Batch`` or ``RecordResult``; the
response is empty). The runner learns the records' typical handler time times the
share of the pass they spent waiting: records that only compute keep to the inline path.

The pass hands what is left to the ``BatchRunner``, which then decides as it always does:

- once the records have spent the inline budget waiting (off the invoking thread's CPU:
  I/O, sleeps, locks; threads could overlap that, not CPU work under the GIL, so time spent
  computing does not count) or the deadline guard says no record may start
  (``deadline_margin_ms``): the rest go to the runner, fanned out on its threads (or, at
  the deadline, skipped by it);
- on a FIFO queue, at the first record reported: that record (its outcome already
  decided) and the rest go to the runner, whose group gate (``sqsx.ordering``) holds back
  the rest of its group, as if the whole batch had run there.

A record that cannot be read gets the core's verdict (``Dispatcher.refuse``), as in the
runner. On a FIFO queue the pass runs only while no group is held back from an earlier
invocation, and without the runner's lock on those groups: Lambda gives an execution
environment one invocation at a time (calls from several threads at once take the runner
for a FIFO queue once a record fails, as before). The fate of every record is the core's:
the lane's ``Outcome`` is the one ``Dispatcher.begin`` gives.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqsx.message import Message
from sqsx.outcome import Outcome
from sqsx.plainlane import PlainLane
from sqsx_lambda.batch import Fate, Job, RecordResult
from sqsx_lambda.records import RecordError, message_of, read_record, usual_to_boto3
from sqsx_lambda.runner import BatchRunner, typical

__all__ = ["InlinePass", "InlineRun", "Ran"]


#: One record that ran inline: the message ``attempt`` ran and its handler's seconds when it
#: succeeded (its ``Message`` and ``Outcome`` are built only when asked), else its
#: ``Message`` and ``Outcome``.
Ran = tuple[dict[str, Any], float] | tuple[Message, Outcome]


@dataclass(slots=True)
class InlineRun:
    """An invocation whose records were all run inline and all deleted.

    Attributes:
        records: the invocation's records.
        ran: per record that ran, in order, its ``Ran``.
    """

    records: Sequence[Mapping[str, Any]]
    ran: list[Ran]

    @property
    def outcomes(self) -> list[Outcome]:
        """Each record's ``Outcome``, in order."""
        return [
            Outcome.succeeded(second) if type(second) is float else second  # type: ignore[misc]
            for _, second in self.ran
        ]

    def judged(self) -> list[tuple[Message, Outcome]]:
        """The records that did not simply succeed (``NoRetry``, a poison record deleted),
        as their message and outcome, in order."""
        return [r for r in self.ran if type(r[1]) is not float]  # type: ignore[misc]

    def pairs(self) -> list[tuple[Message, Outcome]]:
        """Each record that ran, as its message and outcome, in order."""
        pairs: list[tuple[Message, Outcome]] = []
        for first, second in self.ran:
            if isinstance(second, float):
                pairs.append((message_of(cast(dict[str, Any], first)), Outcome.succeeded(second)))
            else:
                pairs.append((cast(Message, first), second))
        return pairs

    def results(self) -> list[RecordResult]:
        """One ``RecordResult`` per record, in order (built only when asked)."""
        return [
            RecordResult(message, Fate.DONE, outcome, outcome.reason)
            for message, outcome in self.pairs()
        ]


class InlinePass:
    """Runs records inline through a plain lane, then hands the rest to ``runner``.

    Args:
        runner: the handler's ``BatchRunner`` (it learns the records' handler time, and
            takes over what the pass leaves).
        job: ``job(index, record) -> Job``, as the runner's jobs are made.
        refuse: the core's outcome of a record that cannot be read.
        deadline_margin_ms: no record starts with less than this many milliseconds left.
    """

    def __init__(
        self,
        runner: BatchRunner,
        job: Callable[[int, Mapping[str, Any]], Job],
        refuse: Callable[[RecordError], Outcome],
        deadline_margin_ms: int,
    ) -> None:
        self._runner = runner
        self._job = job
        self._refuse = refuse
        self._margin_ms = deadline_margin_ms

    def run(
        self,
        lane: PlainLane,
        records: Sequence[Mapping[str, Any]],
        lambda_context: Any,
        until: float,
        *,
        ordered_groups: bool,
    ) -> InlineRun | list[RecordResult]:
        """Run ``records`` while the time they spent waiting (off this thread's CPU) stays
        within ``until`` (``time.perf_counter()``) less the pass's start: an ``InlineRun``
        when every record ran and was deleted, else one ``RecordResult`` per record, in
        order, the runner's for those it took over."""
        remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
        if not callable(remaining):
            remaining = _no_deadline
        margin_ms = self._margin_ms
        attempt, judge = lane.attempt, lane.judge
        ran: list[Ran] = []
        clean = True
        started, cpu_started = time.perf_counter(), time.thread_time()
        patience = until - started
        for record in records:
            now = time.perf_counter()
            if now >= until:  # threads can overlap waits, not this thread's CPU work
                waited = now - started - (time.thread_time() - cpu_started)
                if waited >= patience:
                    break
                until = now + patience - waited
            if remaining() <= margin_ms:
                break
            raw = usual_to_boto3(record)
            if raw is not None:
                got = attempt(raw, lambda_context)
                if type(got) is float:  # it succeeded: nothing more to build
                    ran.append((raw, got))
                    continue
                message = message_of(raw)
                outcome = judge(message, got)  # type: ignore[arg-type]
            else:
                message, outcome = self._unusual(lane, record, lambda_context)
            ran.append((message, outcome))
            if outcome.retry_after is not None:
                clean = False
                if ordered_groups:
                    break
        if ran:
            self._learn(ran, started, cpu_started)
        run = InlineRun(records, ran)
        if clean and len(ran) == len(records):
            return run
        return self._hand_over(run, lambda_context, ordered_groups)

    def _unusual(
        self, lane: PlainLane, record: Mapping[str, Any], lambda_context: Any
    ) -> tuple[Message, Outcome]:
        """A record not in Lambda's usual shape: converted field by field, or refused."""
        try:
            message = read_record(record)
        except RecordError as err:
            return err.envelope, self._refuse(err)
        return message, lane(message, lambda_context)

    def _learn(self, ran: list[Ran], started: float, cpu_started: float) -> None:
        """Teach the runner the records' typical time times the share of it they waited."""
        wall = time.perf_counter() - started
        share = 1 - min((time.thread_time() - cpu_started) / wall, 1) if wall > 0 else 1
        seconds = [s if type(s) is float else s.handler_seconds for _, s in ran]  # type: ignore[union-attr]
        self._runner.learn(typical(seconds) * share)

    def _hand_over(
        self, run: InlineRun, lambda_context: Any, ordered_groups: bool
    ) -> list[RecordResult]:
        records, done = run.records, len(run.ran)
        results = run.results()
        jobs: list[Job] = []
        failed = done and results[-1].reported
        if ordered_groups and failed:  # the group gate must see it fail, to hold its group
            last = results.pop()
            jobs.append(Job(done - 1, last.message, last.outcome))
        jobs += [self._job(index, records[index]) for index in range(done, len(records))]
        if jobs:
            slow = not (ordered_groups and failed)  # the budget or the deadline ran out
            results += self._runner.run(
                jobs, lambda_context, ordered_groups=ordered_groups, fan_out=slow
            )
        return results


def _no_deadline() -> float:
    return math.inf
