"""Many queues, one worker: the share each queue gets, and a quiet queue's latency.

Three queues on the simulated SQS (``bench.simsqs``, 10 ms per call), one ``QueueGroup``
with 8 shared handler threads, handlers of 20 ms (sleeping): the threads, not the receives,
are the bottleneck (8 threads run 400 tasks a second; each queue's receiver could bring
1,000), which is when sharing matters: with threads to spare, every queue gets all it
receives whatever its weight.

- ``flood`` (weight 1) and ``steady`` (weight 2), each filled far deeper than the run can
  drain: both have work all along, so the shared threads split between them by weight;
- ``quiet`` (weight 1), fed 20 tasks a second by a producer thread, each carrying its send
  time: its latency (send to handler start) is what a flood must not spoil.

Measured: the share of handler starts of ``flood`` and ``steady`` (expected 1 : 2), and the
quiet queue's latency p50 / p95 / max. Every quiet task sent must have run.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.polling import fill
from bench.report import Row
from bench.simsqs import SimulatedSqs
from sqsx import ConsumeOptions, Queue, QueueGroup, TaskMessage

TASK = "work"
# flood : steady, what the weights ask for; met when measured within this tolerance
_TOLERANCE = 0.10
# the quiet queue's latency p95 must stay under this (seconds)
_QUIET_P95_TARGET = 0.25


@dataclass(frozen=True)
class QueuesScenario:
    threads: int = 8
    handler_ms: float = 20.0
    latency_seconds: float = 0.010
    depth: int = 3_000
    quiet_per_second: float = 20.0
    seconds: float = 4.0
    weights: tuple[int, int, int] = (1, 2, 1)  # flood, steady, quiet


@dataclass
class QueuesResult:
    scenario: QueuesScenario
    starts: dict[str, int] = field(default_factory=dict)
    quiet_latencies: list[float] = field(default_factory=list)
    quiet_sent: int = 0
    seconds: float = 0.0

    @property
    def ratio(self) -> float:
        """steady starts per flood start (the weights ask for 2)."""
        return self.starts["steady"] / max(self.starts["flood"], 1)

    def quantile(self, fraction: float) -> float:
        ordered = sorted(self.quiet_latencies)
        return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)] if ordered else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": asdict(self.scenario),
            "starts": self.starts,
            "steady_per_flood": self.ratio,
            "quiet_sent": self.quiet_sent,
            "quiet_ran": len(self.quiet_latencies),
            "quiet_latency_p50": statistics.median(self.quiet_latencies or [0.0]),
            "quiet_latency_p95": self.quantile(0.95),
            "quiet_latency_max": max(self.quiet_latencies or [0.0]),
            "seconds": self.seconds,
        }


def run(scenario: QueuesScenario) -> QueuesResult:
    """Run the three queues for ``scenario.seconds`` and measure."""
    sqs = SimulatedSqs(latency_seconds=scenario.latency_seconds)
    urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("flood", "steady")}
    urls["quiet"] = sqs.create_queue(QueueName="quiet")["QueueUrl"]
    for name in ("flood", "steady"):
        fill(sqs, urls[name], scenario.depth)
    result = QueuesResult(scenario, starts={"flood": 0, "steady": 0, "quiet": 0})
    lock = threading.Lock()
    pause = scenario.handler_ms / 1000

    def handler_for(name: str) -> Any:
        def work(context: dict[str, Any], n: int = 0, sent: float = 0.0) -> None:
            with lock:
                result.starts[name] += 1
                if name == "quiet":
                    result.quiet_latencies.append(time.time() - sent)
            time.sleep(pause)

        return work

    queues = []
    for name in ("flood", "steady", "quiet"):
        queue = Queue(url=urls[name], sqs_client=sqs)
        queue.add_task_handler(TASK, handler_for(name))
        queues.append(queue)
    group = QueueGroup(queues, weights=scenario.weights)
    options = ConsumeOptions(
        max_messages=10, max_threads=scenario.threads, polling_wait_seconds=1, wait_seconds=0
    )
    worker = threading.Thread(target=group.run, args=(options,), name="bench-queues")
    started = time.perf_counter()
    worker.start()
    stop = threading.Event()
    quiet = queues[2]
    while not stop.wait(1 / scenario.quiet_per_second):
        quiet.send_tasks([TaskMessage(TASK, {"sent": time.time()})])
        result.quiet_sent += 1
        if time.perf_counter() - started >= scenario.seconds:
            stop.set()
    with lock:
        counted = dict(result.starts)
    result.seconds = time.perf_counter() - started
    deadline = time.monotonic() + 10  # the last quiet tasks: run them before stopping
    while len(result.quiet_latencies) < result.quiet_sent and time.monotonic() < deadline:
        time.sleep(0.05)
    group.exit_gracefully()
    worker.join(60)
    if worker.is_alive():
        raise RuntimeError("the queue group did not stop within 60 s")
    result.starts = counted
    return result


def row(result: QueuesResult) -> Row:
    """The table's line for ``result``."""
    s = result.scenario
    expected = s.weights[1] / s.weights[0]
    share_ok = abs(result.ratio - expected) <= _TOLERANCE * expected
    quiet_ok = result.quantile(0.95) < _QUIET_P95_TARGET
    complete = len(result.quiet_latencies) == result.quiet_sent
    verdict = "met" if share_ok and quiet_ok and complete else "MISSED"
    return Row(
        scenario=f"3 queues, {s.threads} shared threads, {s.handler_ms:g} ms handlers: "
        f"flood : steady weights {s.weights[0]}:{s.weights[1]}, quiet at "
        f"{s.quiet_per_second:g}/s",
        measured=f"starts flood {result.starts['flood']:,}, steady {result.starts['steady']:,} "
        f"(x{result.ratio:.2f}), quiet {result.starts['quiet']:,}; quiet latency p50 "
        f"{_ms(statistics.median(result.quiet_latencies or [0.0]))}, p95 "
        f"{_ms(result.quantile(0.95))}",
        reference=f"simulated SQS, {s.latency_seconds * 1000:g} ms per call",
        calls="",
        cpu="",
        integrity=f"quiet ran {len(result.quiet_latencies)} of {result.quiet_sent}",
        target=f"x{expected:g} +-{_TOLERANCE:.0%}, quiet p95 < {_ms(_QUIET_P95_TARGET)}",
        verdict=verdict,
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"
