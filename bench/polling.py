"""Polling scenarios: a worker drains a deep queue on the simulated SQS.

Each scenario queues ``depth`` tasks, then runs ``Queue.run`` with ``max_messages=10`` until
every task is done or the time budget is spent, and measures over that window: messages per
second, SQS calls per 1,000 messages by operation, and the client's CPU seconds per 1,000
messages (the process's CPU time minus what the simulator spent serving calls). After a
graceful stop it checks every message: lost (deleted but never handled), duplicates (handled
more than once) and unacknowledged (handled but not deleted).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.simsqs import SimulatedSqs
from sqsx import ConsumeOptions, Hook, Queue, TaskMessage

TASK = "work"


@dataclass(frozen=True)
class PollingScenario:
    """One run: ``threads`` handler threads, each task sleeping ``handler_ms``."""

    threads: int
    handler_ms: float
    depth: int = 20_000
    budget_seconds: float = 12.0
    latency_seconds: float = 0.010
    receivers: int | None = None  # None: the engine's default
    ack_delay_seconds: float = 0.2
    visibility_timeout: int = 60
    #: With N > 0 the handler is ``async def`` (``await asyncio.sleep``) and the worker
    #: runs up to N coroutines at once (``max_async``) on its ``threads`` handler threads.
    coroutines: int = 0

    @property
    def name(self) -> str:
        if self.coroutines:
            return (
                f"async {self.handler_ms:g} ms x {self.coroutines:,} coroutines "
                f"({self.threads} threads)"
            )
        return f"polling {self.handler_ms:g} ms x {self.threads} threads"

    def bound(self, receivers: int) -> float:
        """Messages per second nothing can beat: ``threads / handler time`` for a handler
        that takes time; for a 0 ms handler the receive bound, ``receivers x 10 / call
        latency`` (``receivers``: the engine's receiving threads). With coroutines,
        ``coroutines / handler time`` unless the receive bound is lower."""
        receive_bound = receivers * 10 / self.latency_seconds
        if self.coroutines:
            return min(self.coroutines / (self.handler_ms / 1000), receive_bound)
        if self.handler_ms:
            return self.threads / (self.handler_ms / 1000)
        return receive_bound

    def bound_kind_for(self, receivers: int) -> str:
        if self.coroutines:
            concurrency = self.coroutines / (self.handler_ms / 1000)
            if concurrency <= receivers * 10 / self.latency_seconds:
                return "coroutines/handler time"
            return "receive bound"
        return self.bound_kind

    @property
    def bound_kind(self) -> str:
        return "threads/handler time" if self.handler_ms else "receive bound"


@dataclass
class PollingResult:
    """Figures of one scenario run."""

    scenario: PollingScenario
    receivers: int
    processed: int
    seconds: float
    calls: dict[str, int]
    client_cpu_seconds: float
    lost: int
    duplicates: int
    unacked: int
    error: str = ""

    @property
    def rate(self) -> float:
        return self.processed / self.seconds if self.seconds else 0.0

    @property
    def bound(self) -> float:
        return self.scenario.bound(self.receivers)

    @property
    def ratio(self) -> float:
        return self.rate / self.bound

    @property
    def calls_per_1000(self) -> dict[str, float]:
        return {op: n * 1000 / self.processed for op, n in sorted(self.calls.items())}

    @property
    def total_calls_per_1000(self) -> float:
        return sum(self.calls_per_1000.values())

    @property
    def cpu_per_1000(self) -> float:
        return self.client_cpu_seconds * 1000 / self.processed

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": asdict(self.scenario),
            "name": self.scenario.name,
            "bound": self.bound,
            "bound_kind": self.scenario.bound_kind_for(self.receivers),
            "receivers": self.receivers,
            "processed": self.processed,
            "seconds": self.seconds,
            "rate": self.rate,
            "ratio": self.ratio,
            "calls_per_1000": self.calls_per_1000,
            "total_calls_per_1000": self.total_calls_per_1000,
            "cpu_per_1000": self.cpu_per_1000,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "unacked": self.unacked,
            "error": self.error,
        }


def fill(sqs: SimulatedSqs, url: str, depth: int) -> None:
    """Queue ``depth`` tasks with ``Queue.send_tasks`` (ten per SendMessageBatch), without
    latency."""
    latency, sqs.latency_seconds = sqs.latency_seconds, 0
    sent = Queue(url=url, sqs_client=sqs).send_tasks(
        TaskMessage(TASK, {"n": n}) for n in range(depth)
    )
    assert all(result.ok for result in sent)
    sqs.latency_seconds = latency


class _Tally:
    """Handler runs by message id; sets ``done`` when ``target`` handlers have finished."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.runs: list[str] = []
        self.done = threading.Event()
        self.done_at = 0.0

    def record(self, message_id: str) -> None:
        self.runs.append(message_id)  # list.append is atomic
        if len(self.runs) == self.target:
            self.done_at = time.perf_counter()
            self.done.set()


def run(scenario: PollingScenario, *, hooks: Sequence[Hook] = ()) -> PollingResult:
    """Run one polling scenario and measure it (with ``hooks`` on the worker's queue)."""
    sqs = SimulatedSqs(latency_seconds=scenario.latency_seconds)
    attributes = {"VisibilityTimeout": str(scenario.visibility_timeout)}
    url = sqs.create_queue(QueueName="bench", Attributes=attributes)["QueueUrl"]
    fill(sqs, url, scenario.depth)
    # enough messages for about ``budget_seconds`` at the bound (one receiver per ten threads)
    guess = scenario.bound(scenario.receivers or max(1, min(4, -(-scenario.threads // 10))))
    if scenario.coroutines:
        guess = scenario.coroutines / (scenario.handler_ms / 1000)
    target = min(scenario.depth, max(200, int(guess * scenario.budget_seconds)))
    tally = _Tally(target)
    seconds = scenario.handler_ms / 1000

    def work(context: dict[str, Any], n: int) -> None:
        if seconds:
            time.sleep(seconds)
        tally.record(context["sqs_message"]["MessageId"])

    async def work_async(context: dict[str, Any], n: int) -> None:
        await asyncio.sleep(seconds)
        tally.record(context["sqs_message"]["MessageId"])

    queue = Queue(url=url, sqs_client=sqs, hooks=hooks)
    queue.add_task_handler(TASK, work_async if scenario.coroutines else work)
    options = ConsumeOptions(
        max_messages=10,
        max_threads=scenario.threads,
        max_async=scenario.coroutines or 1,
        polling_wait_seconds=1,
        wait_seconds=0,
        receivers=scenario.receivers,
        ack_delay_seconds=scenario.ack_delay_seconds,
    )
    calls_before = sqs.call_counts()
    cpu_before, sim_before = time.process_time(), sqs.cpu_seconds
    started = time.perf_counter()
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            queue.run(options)
        except BaseException as err:  # reported in the table, not lost in a thread
            errors.append(err)

    worker = threading.Thread(target=consume, name="bench-worker")
    worker.start()
    finished = tally.done.wait(scenario.budget_seconds * 3 + 30)
    ended = tally.done_at if finished else time.perf_counter()
    processed = len(tally.runs)
    cpu = (time.process_time() - cpu_before) - (sqs.cpu_seconds - sim_before)
    receivers = sum(t.name.startswith("sqsx-receiver") for t in threading.enumerate())
    calls_after = sqs.call_counts()
    queue.exit_gracefully()
    worker.join(60)
    if worker.is_alive():
        raise RuntimeError(f"{scenario.name}: the worker did not stop within 60 s")

    report = sqs.report(url)
    handled = set(tally.runs)
    calls = {
        op: calls_after.get(op, 0) - calls_before.get(op, 0)
        for op in calls_after
        if calls_after.get(op, 0) - calls_before.get(op, 0)
    }
    return PollingResult(
        scenario=scenario,
        receivers=receivers,
        processed=processed,
        seconds=ended - started,
        calls=calls,
        client_cpu_seconds=cpu,
        lost=len(report.deleted_messages - handled),
        duplicates=len(tally.runs) - len(handled),
        unacked=len(handled - report.deleted_messages),
        error=f"{type(errors[0]).__name__}: {errors[0]}" if errors else "",
    )


def scenarios(quick: bool = False) -> list[PollingScenario]:
    """The published set: handlers of 0 and 10 ms on 1, 10 and 32 threads."""
    budget = 3.0 if quick else 12.0
    depth = 2_000 if quick else 20_000
    return [
        PollingScenario(threads=t, handler_ms=ms, depth=depth, budget_seconds=budget)
        for ms in (0, 10)
        for t in (1, 10, 32)
    ]


def async_scenarios(quick: bool = False) -> list[PollingScenario]:
    """Issue 11's: 1,000 coroutines of ``asyncio.sleep(0.1)`` on 4 handler threads, with
    the engine's default receivers (8) and with 12, whose receive bound (12,000/s at 10 ms
    per call) is above the coroutines' 10,000/s."""
    budget = 1.5 if quick else 3.0  # seconds at the bound: 30,000 messages
    depth = 20_000 if quick else 40_000
    return [
        PollingScenario(
            threads=4, handler_ms=100, depth=depth, budget_seconds=budget, coroutines=1000,
            receivers=receivers,
        )
        for receivers in (None, 12)
    ]  # fmt: skip
