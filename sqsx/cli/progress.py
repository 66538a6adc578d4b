"""Live progress of a running worker, and its summary at exit (used by ``sqsx worker``).

Two reporters read ``queue.stats()`` from a background thread:

- ``CounterLines`` writes one line of counters every ``interval`` seconds (any stream);
- ``DrainBar`` draws a progress bar against the queue's approximate depth, with rate and
  ETA, using ``rich`` (a terminal and ``--drain`` only; imported lazily).

The bar reads the queue's depth with ``sqsx.sqs.read_depth``, as ``sqsx stats`` does.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Protocol, TextIO

from sqsx.queue import BaseQueue
from sqsx.sqs import QueueDepth, error_code, read_depth
from sqsx.stats import StatsSnapshot

__all__ = [
    "CounterLines",
    "DrainBar",
    "Reporter",
    "StatsSource",
    "describe_stop",
    "format_bar_text",
    "format_counters",
    "format_eta",
    "format_queue_lines",
    "format_summary",
    "make_reporter",
]

logger = logging.getLogger(__name__)

# The bar redraws this often and re-reads the queue's depth at most this often (seconds).
_BAR_TICK_SECONDS = 0.25
_DEPTH_EVERY_SECONDS = 1.0
# The bar's rate is taken over this many recent seconds.
_RATE_WINDOW_SECONDS = 5.0
# The shortest text right of the bar: "12,345/12,345  123.4 msg/s  ETA 1:23:45".
_TEXT_MIN_COLUMNS = 40


class StatsSource(Protocol):
    """What a reporter reads: a queue, or the fleet of ``sqsx worker --processes N``."""

    def stats(self) -> StatsSnapshot:
        """The counters now."""
        ...


def format_counters(snapshot: StatsSnapshot, rate: float) -> str:
    """One progress line: ``rate`` (processed messages per second) and the counters."""
    return (
        f"sqsx: {rate:.1f} msg/s | processed {snapshot.processed:,} | "
        f"succeeded {snapshot.succeeded:,} | retried {snapshot.retried:,} | "
        f"dropped {snapshot.no_retry:,} | unprocessable {snapshot.unprocessable:,} | "
        f"in flight {snapshot.in_flight:,}"
    )


def format_summary(snapshot: StatsSnapshot, seconds: float, ending: str) -> str:
    """The summary printed when a worker exits (three lines).

    Args:
        snapshot: the counters at exit.
        seconds: how long the worker ran, in seconds.
        ending: how it ended, e.g. ``"drained"`` or ``"stopped gracefully (SIGTERM)"``.
    """
    rate = snapshot.processed / seconds if seconds > 0 else 0.0
    return (
        f"sqsx: {ending} after {seconds:.1f} s: processed {snapshot.processed:,} "
        f"({rate:.1f} msg/s), received {snapshot.received:,}\n"
        f"  succeeded {snapshot.succeeded:,} | retried {snapshot.retried:,} | "
        f"dropped (NoRetry) {snapshot.no_retry:,} | unprocessable {snapshot.unprocessable:,} | "
        f"released {snapshot.released:,}\n" + _latencies(snapshot)
    )


def format_queue_lines(by_queue: Mapping[str, StatsSnapshot]) -> str:
    """The summary's lines for each queue of a group, after the totals: one per queue,
    named by the last part of its URL."""
    lines = []
    for url, snap in by_queue.items():
        name = url.rstrip("/").rsplit("/", 1)[-1]
        p95 = _ms(snap.latency_p95) if snap.processed else "-"
        lines.append(
            f"  {name}: processed {snap.processed:,}, received {snap.received:,} | "
            f"succeeded {snap.succeeded:,} | retried {snap.retried:,} | "
            f"dropped {snap.no_retry:,} | unprocessable {snap.unprocessable:,} | "
            f"released {snap.released:,} | p95 {p95}"
        )
    return "\n".join(lines)


def _latencies(snapshot: StatsSnapshot) -> str:
    if not snapshot.succeeded + snapshot.retried + snapshot.no_retry:
        return "  handler latency: no handler finished"
    return (
        f"  handler latency p50 {_ms(snapshot.latency_p50)} | p95 {_ms(snapshot.latency_p95)} | "
        f"max {_ms(snapshot.latency_max)}"
    )


def describe_stop(*, forced: bool, signals: Sequence[int]) -> tuple[str, int] | None:
    """How a stop asked by signals ended, and its exit code (0, or 128 + the last signal
    when a second one stopped without waiting); ``None`` when no signal came.

    Args:
        forced: the stop did not wait for running handlers.
        signals: the signals received, in order.
    """
    if forced:
        last = signals[-1] if signals else signal.SIGINT
        return f"stopped at once ({signal.Signals(last).name} twice)", 128 + int(last)
    if signals:
        return f"stopped gracefully ({signal.Signals(signals[0]).name})", 0
    return None


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


class Reporter:
    """A background thread that shows progress until ``stop()``; a context manager.

    Args:
        queue: the queue (or fleet) whose ``stats()`` are shown.
        interval: seconds between two updates.
    """

    def __init__(self, queue: StatsSource, interval: float) -> None:
        self._queue = queue
        self._interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sqsx-progress", daemon=True)

    def start(self) -> None:
        """Start updating."""
        self._thread.start()

    def stop(self) -> None:
        """Stop updating (idempotent) and wait for the last update to be drawn."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def log_handler(self) -> logging.Handler | None:
        """A handler that prints log records without garbling the display, or ``None``
        when plain stderr logging is fine."""
        return None

    def _loop(self) -> None:
        while not self._done.wait(self._interval):
            self._update(final=False)
        self._update(final=True)

    def _update(self, *, final: bool) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __enter__(self) -> Reporter:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class CounterLines(Reporter):
    """Writes ``format_counters`` to ``stream`` every ``interval`` seconds; the rate is over
    the last interval."""

    def __init__(self, queue: StatsSource, interval: float, stream: TextIO) -> None:
        super().__init__(queue, interval)
        self._stream = stream
        self._last = queue.stats()

    def _update(self, *, final: bool) -> None:
        if final:
            return  # the summary follows
        snapshot = self._queue.stats()
        seconds = snapshot.elapsed - self._last.elapsed
        rate = (snapshot.processed - self._last.processed) / seconds if seconds > 0 else 0.0
        self._last = snapshot
        self._stream.write(format_counters(snapshot, rate) + "\n")
        self._stream.flush()


class DrainBar(Reporter):
    """A ``rich`` progress bar for a draining worker.

    The bar's total is the messages this worker has finished with (deleted) plus the
    queue's approximate depth, re-read at most once a second; it converges as the queue
    empties. Messages moved to a dead-letter queue leave the total.

    Args:
        queue: the draining queue.
        stream: the terminal to draw on (stderr).

    Raises:
        ImportError: ``rich`` is not installed (``pip install 'sqsx[cli]'``).
    """

    def __init__(self, queue: BaseQueue, stream: TextIO) -> None:
        super().__init__(queue, _BAR_TICK_SECONDS)
        self._bar_queue = queue
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self._console = Console(file=stream)
        # "draining " + bar + " " + the text: the whole line fits the terminal (80 columns too)
        self._bar_width = max(10, min(40, self._console.width - 9 - 1 - _TEXT_MIN_COLUMNS))
        self._text_width = self._console.width - 9 - self._bar_width - 1
        self._progress = Progress(
            TextColumn("[bold]draining[/]"),
            BarColumn(bar_width=self._bar_width),
            TextColumn("{task.fields[text]}"),
            console=self._console,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._deletes_unprocessable = queue.dispatcher.poison_policy == "delete"
        self._depth: QueueDepth | None = None
        self._next_depth = 0.0  # read at the first update
        self._window: deque[tuple[float, int]] = deque()
        self._task = self._progress.add_task("draining", total=None, text="")

    def start(self) -> None:
        """Draw the bar and start updating it."""
        self._update(final=False)
        self._progress.start()
        super().start()

    def stop(self) -> None:
        """Draw the final state and leave the bar on screen."""
        super().stop()
        self._progress.stop()

    def log_handler(self) -> logging.Handler:
        """A ``rich`` log handler that prints above the bar."""
        from rich.logging import RichHandler

        return RichHandler(console=self._console, show_path=False)

    def _read_depth(self, last: QueueDepth | None) -> QueueDepth | None:
        try:
            return read_depth(self._bar_queue.sqs_client, self._bar_queue.url)
        except Exception as err:  # the bar must not stop the worker
            logger.debug(
                "could not read queue depth: %s queue_url=%s", error_code(err), self._bar_queue.url
            )
            return last

    def _update(self, *, final: bool) -> None:
        now = time.monotonic()
        if final or now >= self._next_depth:
            self._depth = self._read_depth(self._depth)
            self._next_depth = now + _DEPTH_EVERY_SECONDS
        snapshot = self._queue.stats()
        done = snapshot.succeeded + snapshot.no_retry
        if self._deletes_unprocessable:
            done += snapshot.unprocessable
        total = None if self._depth is None else done + self._depth.total
        self._progress.update(
            self._task,
            completed=done,
            total=total,
            text=format_bar_text(
                snapshot, done, total, self._rate(now, snapshot.processed), self._text_width
            ),
            refresh=final,
        )

    def _rate(self, now: float, processed: int) -> float:
        self._window.append((now, processed))
        while len(self._window) > 2 and now - self._window[0][0] > _RATE_WINDOW_SECONDS:
            self._window.popleft()
        first_time, first_count = self._window[0]
        return (processed - first_count) / (now - first_time) if now > first_time else 0.0


def format_bar_text(
    snapshot: StatsSnapshot, done: int, total: int | None, rate: float, width: int
) -> str:
    """The text right of the drain bar, at most ``width`` characters: ``done/total``, the
    rate (messages per second), the ETA at that rate, then as many counters as fit."""
    left = None if total is None else max(0, total - done)
    text = (
        f"{done:,}/{'?' if total is None else f'{total:,}'} {rate:6.1f} msg/s  "
        f"ETA {format_eta(left, rate)}"
    )
    for counter in (
        f"in flight {snapshot.in_flight:,}",
        f"retried {snapshot.retried:,}",
        f"dropped {snapshot.no_retry:,}",
    ):
        if len(text) + 3 + len(counter) > width:
            break
        text += f" · {counter}"
    return text[:width]


def format_eta(left: int | None, rate: float) -> str:
    """``1:05`` (``m:ss``, or ``h:mm:ss`` past an hour) for ``left`` messages at ``rate`` per
    second; ``-:--`` while either is unknown."""
    if left is None or (left and rate <= 0):
        return "-:--"
    minutes, seconds = divmod(math.ceil(left / rate) if left else 0, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def make_reporter(
    queue: StatsSource, *, drain: bool, interval: float, stream: TextIO
) -> Reporter | None:
    """The reporter for a worker: none when ``interval`` is 0; a bar when draining one
    queue on a terminal with ``rich`` installed; else counter lines every ``interval``
    seconds (for a ``QueueGroup``, of all its queues together)."""
    if interval <= 0:
        return None
    if drain and stream.isatty() and isinstance(queue, BaseQueue):
        try:
            return DrainBar(queue, stream)
        except ImportError:
            logger.info("rich is not installed: showing counter lines (pip install 'sqsx[cli]')")
    return CounterLines(queue, interval, stream)
