"""Counters and handler latencies of a running consumer, for progress lines and metrics."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from sqsx.dispatch import Outcome, Verdict
from sqsx.hooks import Hook, Processing

__all__ = ["Stats", "StatsHook", "StatsSnapshot", "sum_snapshots"]

# Latency percentiles are taken over the most recent handler runs.
_LATENCY_WINDOW = 20_000


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """Counters at one instant. Times are in seconds.

    Attributes:
        received: messages received from SQS.
        succeeded: handlers that returned (message deleted).
        retried: handlers that raised ``Retry`` or another exception (message backed off).
        no_retry: handlers that raised ``NoRetry`` (message deleted).
        unprocessable: messages no handler could take (undecodable, unknown task, bad kwargs).
        timed_out: handlers that ran past their time limit (message backed off).
        released: messages given back unstarted: at a stop or a deadline (visibility 0),
            held back behind a failed FIFO message, or past a capped task's backlog.
        in_flight: handlers running now.
        elapsed: seconds since the counters started.
        latency_p50 / latency_p95 / latency_max: handler run times over the recent window.
    """

    received: int
    succeeded: int
    retried: int
    no_retry: int
    unprocessable: int
    released: int
    in_flight: int
    elapsed: float
    latency_p50: float
    latency_p95: float
    latency_max: float
    timed_out: int = 0

    @property
    def processed(self) -> int:
        """Messages whose handler ran or that were judged unprocessable."""
        return self.succeeded + self.retried + self.no_retry + self.unprocessable + self.timed_out

    @property
    def rate(self) -> float:
        """Processed messages per second since the start."""
        return self.processed / self.elapsed if self.elapsed > 0 else 0.0


class Stats:
    """Thread-safe counters, fed by a runtime as messages arrive and finish."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._counts = dict.fromkeys(Verdict, 0)
        self._received = 0
        self._released = 0
        self._in_flight = 0
        self._latencies: deque[float] = deque(maxlen=_LATENCY_WINDOW)
        self._max_latency = 0.0

    def received(self, count: int) -> None:
        """Count ``count`` messages received."""
        with self._lock:
            self._received += count

    def released(self, count: int) -> None:
        """Count ``count`` messages given back unstarted."""
        with self._lock:
            self._released += count

    def started(self) -> None:
        """A handler started."""
        with self._lock:
            self._in_flight += 1

    def finished(self, outcome: Outcome) -> None:
        """A handler (or the decision not to run one) finished with ``outcome``."""
        with self._lock:
            self._in_flight -= 1
            self._counts[outcome.verdict] += 1
            if outcome.verdict is not Verdict.UNPROCESSABLE:
                self._latencies.append(outcome.handler_seconds)
                self._max_latency = max(self._max_latency, outcome.handler_seconds)

    def snapshot(self) -> StatsSnapshot:
        """The counters now."""
        with self._lock:
            latencies = sorted(self._latencies)
            counts = dict(self._counts)
            received, released, in_flight = self._received, self._released, self._in_flight
            max_latency = self._max_latency
        return StatsSnapshot(
            received=received,
            succeeded=counts[Verdict.SUCCEEDED],
            retried=counts[Verdict.RETRIED],
            no_retry=counts[Verdict.NO_RETRY],
            unprocessable=counts[Verdict.UNPROCESSABLE],
            timed_out=counts[Verdict.TIMED_OUT],
            released=released,
            in_flight=in_flight,
            elapsed=time.monotonic() - self._started,
            latency_p50=_percentile(latencies, 0.50),
            latency_p95=_percentile(latencies, 0.95),
            latency_max=max_latency,
        )


class StatsHook(Hook):
    """Feeds ``stats`` with every message the core processes (the worker's counters).

    Args:
        stats: the counters to feed.
    """

    def __init__(self, stats: Stats) -> None:
        self._stats = stats

    def before_process(self, processing: Processing) -> None:
        self._stats.started()

    def after_process(self, processing: Processing, outcome: Outcome) -> None:
        self._stats.finished(outcome)


def sum_snapshots(snapshots: list[StatsSnapshot], elapsed: float) -> StatsSnapshot:
    """Counters summed (the processes of a fleet, the queues of a group); p50 weighted by
    processed messages, p95 and max the largest."""
    total = sum(s.processed for s in snapshots)
    p50 = sum(s.latency_p50 * s.processed for s in snapshots) / total if total else 0.0
    return StatsSnapshot(
        received=sum(s.received for s in snapshots),
        succeeded=sum(s.succeeded for s in snapshots),
        retried=sum(s.retried for s in snapshots),
        no_retry=sum(s.no_retry for s in snapshots),
        unprocessable=sum(s.unprocessable for s in snapshots),
        timed_out=sum(s.timed_out for s in snapshots),
        released=sum(s.released for s in snapshots),
        in_flight=sum(s.in_flight for s in snapshots),
        elapsed=elapsed,
        latency_p50=p50,
        latency_p95=max((s.latency_p95 for s in snapshots), default=0.0),
        latency_max=max((s.latency_max for s in snapshots), default=0.0),
    )


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]
