"""Concurrency caps: an uncapped task's throughput alone, and beside a capped task.

One worker (``Queue.run``, ``threads`` handler threads) on the simulated SQS drains a deep
queue of ``free`` tasks (a ``free_ms`` sleep, no cap). *Alone*, the queue holds only them.
*Beside*, one message in every ``capped_every`` (0: none) is a ``capped`` task instead
(``max_concurrency=cap``, a ``capped_ms`` sleep), and ``capped_head`` more capped messages
sit at the head of the queue, so the worker receives them first. Each run measures the free
task's finishes over ``window_seconds`` after ``warmup_seconds`` (free messages per second),
and, inside the capped handler, the most capped handlers that ever ran at once. Alone and
beside runs alternate ``repeats`` times; the figures are medians, the ratio is of medians.

Three mixes: *light* (1 in 50 capped), where the cap drains capped messages faster than
they arrive and only smooths their bursts; *heavy* (1 in 10), where they arrive faster
than the cap lets them run; *deep backlog*, 300 capped messages ahead of the free ones.
In the last two the capped backlog outgrows what the worker keeps of it
(``sqsx.caps.keep_waiting``): it gives the rest back to SQS, to come back when the cap
should have room, and the row counts those give-backs (each one a receive more for its
message). The free task's share of the threads, ``(threads - cap) / threads``, bounds the
ratio.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.report import Row
from bench.simsqs import SimulatedSqs
from sqsx import ConsumeOptions, Queue, TaskMessage

# What the issue asks: the uncapped task within 10 % of its rate alone.
TARGET_RATIO = 0.90


@dataclass(frozen=True)
class CapsScenario:
    """One mix (see the module docstring); times in seconds, handlers in milliseconds."""

    name: str
    threads: int = 32
    free_ms: float = 50.0
    cap: int = 2
    capped_ms: float = 100.0
    capped_every: int = 50
    capped_head: int = 0
    depth: int = 6_000
    warmup_seconds: float = 1.0
    window_seconds: float = 4.0
    repeats: int = 3

    @property
    def thread_share(self) -> float:
        """The free task's share of the threads when the capped one runs at its cap."""
        return (self.threads - self.cap) / self.threads


@dataclass
class CapsResult:
    """Free-task rates (messages per second) by run, and the capped task's peaks."""

    scenario: CapsScenario
    alone: list[float] = field(default_factory=list)
    beside: list[float] = field(default_factory=list)
    capped_rates: list[float] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)
    #: capped messages given back to SQS past the backlog the worker keeps, per run
    given_back: list[int] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.beside) / statistics.median(self.alone)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": asdict(self.scenario),
            "alone": self.alone,
            "beside": self.beside,
            "capped_rates": self.capped_rates,
            "peak_concurrency": self.peaks,
            "given_back": self.given_back,
            "ratio": self.ratio,
        }


class _Gauge:
    """Finish times of each task, and capped handlers running at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.finished: dict[str, list[float]] = {"free": [], "capped": []}
        self.now = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1

    def finish(self, task: str) -> None:
        self.finished[task].append(time.perf_counter())  # list.append is atomic

    def rate(self, task: str, start: float, end: float) -> float:
        return sum(start <= t < end for t in self.finished[task]) / (end - start)


def _fill(sqs: SimulatedSqs, url: str, scenario: CapsScenario, beside: bool) -> None:
    """Queue the mix without latency, in the order the worker will receive it."""
    messages = [
        TaskMessage("capped", {"n": -i}) for i in range(scenario.capped_head if beside else 0)
    ]
    for n in range(scenario.depth):
        every = scenario.capped_every
        capped = beside and every > 0 and n % every == every - 1
        messages.append(TaskMessage("capped" if capped else "free", {"n": n}))
    latency, sqs.latency_seconds = sqs.latency_seconds, 0
    assert all(result.ok for result in Queue(url=url, sqs_client=sqs).send_tasks(messages))
    sqs.latency_seconds = latency


def measure(scenario: CapsScenario, *, beside: bool) -> tuple[float, float, int, int]:
    """One run: the free task's rate, the capped task's rate, the capped peak, and the
    capped messages given back (released before the stop)."""
    sqs = SimulatedSqs(latency_seconds=0.010)
    url = sqs.create_queue(QueueName="caps", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    _fill(sqs, url, scenario, beside)
    gauge = _Gauge()

    def free(context: dict[str, Any], n: int) -> None:
        time.sleep(scenario.free_ms / 1000)
        gauge.finish("free")

    def capped(context: dict[str, Any], n: int) -> None:
        gauge.enter()
        try:
            time.sleep(scenario.capped_ms / 1000)
        finally:
            gauge.leave()
        gauge.finish("capped")

    queue = Queue(url=url, sqs_client=sqs)
    queue.add_task_handler("free", free)
    queue.add_task_handler("capped", capped, max_concurrency=scenario.cap)
    options = ConsumeOptions(
        max_messages=10, max_threads=scenario.threads, polling_wait_seconds=1, wait_seconds=0
    )
    worker = threading.Thread(target=queue.run, args=(options,), name="bench-caps")
    started = time.perf_counter()
    worker.start()
    start = started + scenario.warmup_seconds
    end = start + scenario.window_seconds
    time.sleep(max(end - time.perf_counter(), 0))
    given_back = queue.stats().released
    queue.exit_gracefully()
    worker.join(60)
    if worker.is_alive():
        raise RuntimeError(f"caps {scenario.name}: the worker did not stop within 60 s")
    if len(gauge.finished["free"]) >= scenario.depth:
        raise RuntimeError(f"caps {scenario.name}: the queue ran dry; raise depth")
    return (
        gauge.rate("free", start, end),
        gauge.rate("capped", start, end),
        gauge.peak,
        given_back,
    )


def run(scenario: CapsScenario) -> CapsResult:
    """Alternate alone and beside runs ``repeats`` times."""
    result = CapsResult(scenario)
    for _ in range(scenario.repeats):
        result.alone.append(measure(scenario, beside=False)[0])
        free, capped, peak, given_back = measure(scenario, beside=True)
        result.beside.append(free)
        result.capped_rates.append(capped)
        result.peaks.append(peak)
        result.given_back.append(given_back)
    return result


def scenarios(quick: bool = False) -> list[CapsScenario]:
    """The light and heavy mixes and the deep backlog."""
    extra: dict[str, Any] = {"repeats": 1, "window_seconds": 2.0} if quick else {}
    return [
        CapsScenario("light", **extra),
        CapsScenario("heavy", capped_every=10, **extra),
        CapsScenario("deep backlog", capped_head=300, capped_every=0, **extra),
    ]


def row(result: CapsResult) -> Row:
    """The table's line for ``result``."""
    s = result.scenario
    met = result.ratio >= TARGET_RATIO and max(result.peaks) <= s.cap
    beside, alone = statistics.median(result.beside), statistics.median(result.alone)
    return Row(
        scenario=f"caps, {s.name}: free {s.free_ms:g} ms beside capped {s.capped_ms:g} ms "
        f"(max_concurrency={s.cap}), {s.threads} threads",
        measured=f"free {beside:.0f} vs {alone:.0f} msg/s alone ({result.ratio:.0%}); capped "
        f"{statistics.median(result.capped_rates):.0f} msg/s, at most {max(result.peaks)} at once, "
        f"{statistics.median(result.given_back or [0]):.0f} given back to SQS",
        reference=f"thread share {s.thread_share:.0%}; medians of {len(result.alone)}",
        calls="",
        cpu="",
        integrity="",
        target=f">= {TARGET_RATIO:.0%} of alone; <= {s.cap} at once",
        verdict="met" if met else f"MISSED: {result.ratio:.0%}, {max(result.peaks)} at once",
    )
