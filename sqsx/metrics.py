"""Prometheus metrics for the polling worker (and any process embedding sqsx), as a hook.

Imported only when asked for; needs ``prometheus_client`` (``pip install 'sqsx[metrics]'``).

- ``PrometheusMetrics`` is a ``sqsx.hooks.Hook``: give it to a queue (``Queue(...,
  hooks=[metrics])`` or ``queue.add_hook(metrics)``) and every processed message is counted
  by queue, task and verdict, with its handler duration and its age since it was sent.
- ``instrument_client(client)`` counts the client's SQS calls by operation, and its errors
  by operation and error code (botocore's ``after-call`` / ``after-call-error`` events;
  failed entries of batch calls count as errors too).
- ``watch(queue)`` samples the queue's visible / in-flight / delayed depth with one
  GetQueueAttributes call every ``interval`` seconds (never once per scrape), and exports
  the worker's messages waiting for a handler thread.
- ``serve(port)`` serves ``/metrics`` on 127.0.0.1 (``host`` to change it).

Label values are bounded: the queue label is the queue's name (not its URL), the task
label a registered task name, ``<raw>`` or ``-`` (the core folds every unknown or
unreadable name into ``-``), the verdict one of four. No body, attribute or message id is
ever a label.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info

from sqsx.dispatch import Outcome, Verdict
from sqsx.exceptions import ConfigurationError
from sqsx.hooks import Hook, Processing
from sqsx.sqs import error_code, read_depth

if TYPE_CHECKING:
    from sqsx.queue import BaseQueue

__all__ = [
    "DURATION_BUCKETS",
    "DepthSampler",
    "PrometheusMetrics",
    "multiprocess",
    "queue_name",
    "worker_info",
]

logger = logging.getLogger(__name__)

#: Handler duration buckets, in seconds: 1 ms to 15 minutes.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                    300, 900)  # fmt: skip
#: Message age buckets, in seconds: 10 ms to 12 hours.
AGE_BUCKETS = (0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600)
_DEPTH_STATES = ("visible", "in_flight", "delayed")
# How often a child of `--processes N` writes its waiting messages out, in seconds.
_WAITING_SECONDS = 1.0


def queue_name(queue_url: str) -> str:
    """The queue's name, the last part of its URL (the ``queue`` label)."""
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


class PrometheusMetrics(Hook):
    """Counts what the core processes and the SQS calls it makes, for Prometheus.

    Args:
        registry: where the metrics are registered; default ``prometheus_client.REGISTRY``
            (then ``prometheus_client``'s own exposition serves them with your others).
            Create one ``PrometheusMetrics`` per registry and share it between queues.
        duration_buckets: handler duration histogram buckets, in seconds.

    Raises:
        ValueError: metrics named ``sqsx_*`` are already registered in ``registry``.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        duration_buckets: tuple[float, ...] = DURATION_BUCKETS,
    ) -> None:
        self.registry = REGISTRY if registry is None else registry
        reg = self.registry
        self.messages = Counter(
            "sqsx_messages", "Messages processed, by verdict.",
            ["queue", "task", "verdict"], registry=reg,
        )  # fmt: skip
        self.duration = Histogram(
            "sqsx_handler_duration_seconds", "Handler run time.",
            ["queue", "task"], buckets=duration_buckets, registry=reg,
        )  # fmt: skip
        self.age = Histogram(
            "sqsx_message_age_seconds", "Time from SentTimestamp to the start of processing.",
            ["queue"], buckets=AGE_BUCKETS, registry=reg,
        )  # fmt: skip
        # multiprocess_mode: how `--processes N` merges the children's values (ignored
        # in one process): the live children's sum; the depth is one queue's, read by all.
        self.in_progress = Gauge(
            "sqsx_messages_in_progress", "Messages whose handler is running.", ["queue"],
            registry=reg, multiprocess_mode="livesum",
        )  # fmt: skip
        self.waiting = Gauge(
            "sqsx_messages_waiting",
            "Messages received by the worker and waiting for a handler thread.",
            ["queue"], registry=reg, multiprocess_mode="livesum",
        )  # fmt: skip
        self.sqs_calls = Counter(
            "sqsx_sqs_calls", "SQS API calls, by operation.", ["operation"], registry=reg
        )
        self.sqs_errors = Counter(
            "sqsx_sqs_errors", "SQS API errors (whole calls and batch entries), by code.",
            ["operation", "code"], registry=reg,
        )  # fmt: skip
        self.depth = Gauge(
            "sqsx_queue_messages", "Approximate queue depth, sampled by GetQueueAttributes.",
            ["queue", "state"], registry=reg, multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.depth_sampled = Gauge(
            "sqsx_queue_depth_sampled_timestamp_seconds",
            "When the queue depth was last read successfully.", ["queue"], registry=reg,
            multiprocess_mode="max",
        )  # fmt: skip
        self.info = Info("sqsx_worker", "The sqsx version and runtime.", registry=reg)
        self.info.info(worker_info())
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._queues: dict[str, tuple[str, Any, Any]] = {}
        self._lock = threading.Lock()
        self._samplers: list[DepthSampler | _Every] = []

    # -- the hook --------------------------------------------------------------------------

    def before_process(self, processing: Processing) -> None:
        _, in_progress, age = self._queue(processing.queue_url)
        in_progress.inc()
        sent = _sent_at(processing.message.raw)
        if sent is not None:
            age.observe(max(time.time() - sent, 0.0))

    def after_process(self, processing: Processing, outcome: Outcome) -> None:
        name, in_progress, _ = self._queue(processing.queue_url)
        in_progress.dec()
        counter, duration = self._child(name, processing.task, outcome.verdict)
        counter.inc()
        if outcome.verdict is not Verdict.UNPROCESSABLE:  # no handler ran
            duration.observe(outcome.handler_seconds)

    # -- SQS calls -------------------------------------------------------------------------

    def instrument_client(self, client: Any) -> None:
        """Count ``client``'s SQS calls and errors (register once per client)."""
        events = client.meta.events
        events.register("after-call.sqs", self._after_call, unique_id=f"sqsx-metrics-{id(self)}")
        events.register(
            "after-call-error.sqs", self._after_error, unique_id=f"sqsx-metrics-err-{id(self)}"
        )

    def _after_call(self, http_response: Any, parsed: Any, model: Any, **_: Any) -> None:
        operation = model.name
        self.sqs_calls.labels(operation).inc()
        status = getattr(http_response, "status_code", 200)
        if status >= 300:
            code = (parsed.get("Error") or {}).get("Code") or f"HTTP{status}"
            self.sqs_errors.labels(operation, str(code)).inc()
        else:
            for failure in parsed.get("Failed") or ():  # batch calls: refused entries
                self.sqs_errors.labels(operation, str(failure.get("Code", "Failed"))).inc()

    def _after_error(self, exception: BaseException, event_name: str = "", **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1] or "unknown"
        self.sqs_calls.labels(operation).inc()
        self.sqs_errors.labels(operation, error_code(exception)).inc()

    # -- depth and the worker's own queue --------------------------------------------------

    def watch(self, queue: BaseQueue, *, interval: float = 15.0) -> DepthSampler:
        """Sample ``queue``'s depth every ``interval`` seconds (one GetQueueAttributes call;
        at least 1 s) and export its messages waiting for a handler. Stop it with
        ``close()``."""
        if interval < 1:
            raise ConfigurationError(f"interval must be at least 1 second, got {interval}")
        name = queue_name(queue.url)

        def waiting() -> float:
            snap = queue.stats()
            done = snap.processed + snap.in_flight + snap.released
            return float(max(snap.received - done, 0))

        gauge = self.waiting.labels(name)
        if multiprocess():  # a function's value would stay in this process: write it out
            self._samplers.append(_Every(_WAITING_SECONDS, lambda: gauge.set(waiting())))
        else:
            gauge.set_function(waiting)
        sampler = DepthSampler(queue.sqs_client, queue.url, self._record_depth, interval)
        self._samplers.append(sampler)
        sampler.start()
        return sampler

    def _record_depth(self, queue_url: str, visible: int, in_flight: int, delayed: int) -> None:
        name = queue_name(queue_url)
        for state, value in zip(_DEPTH_STATES, (visible, in_flight, delayed), strict=True):
            self.depth.labels(name, state).set(value)
        self.depth_sampled.labels(name).set(time.time())

    def serve(self, port: int, host: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` from this registry on ``host:port`` in a daemon thread.

        Returns the HTTP server (``server.server_port`` is the bound port, useful with
        ``port=0``; ``server.shutdown()`` stops it)."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        logger.info("serving Prometheus metrics on http://%s:%d/metrics", host, server.server_port)
        return server

    def close(self) -> None:
        """Stop the depth samplers started by ``watch``."""
        for sampler in self._samplers:
            sampler.stop()
        self._samplers.clear()

    # -- cached label children (the hot path takes no registry lock) -----------------------

    def _queue(self, queue_url: str) -> tuple[str, Any, Any]:
        found = self._queues.get(queue_url)
        if found is None:
            name = queue_name(queue_url)
            found = (name, self.in_progress.labels(name), self.age.labels(name))
            with self._lock:
                self._queues[queue_url] = found
        return found

    def _child(self, name: str, task: str, verdict: Verdict) -> tuple[Any, Any]:
        key = (name, task, verdict.value)
        found = self._children.get(key)
        if found is None:
            found = (self.messages.labels(*key), self.duration.labels(name, task))
            with self._lock:
                self._children[key] = found
        return found


class DepthSampler:
    """Reads a queue's depth every ``interval`` seconds in a daemon thread.

    Args:
        client: the SQS client.
        queue_url: the queue.
        record: called with ``(queue_url, visible, in_flight, delayed)`` after each read.
        interval: seconds between reads.
    """

    def __init__(
        self,
        client: Any,
        queue_url: str,
        record: Callable[[str, int, int, int], None],
        interval: float,
    ) -> None:
        self._client = client
        self._url = queue_url
        self._record = record
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sqsx-depth", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def sample(self) -> bool:
        """Read the depth once; ``False`` (and a WARNING line) when SQS refused."""
        try:
            depth = read_depth(self._client, self._url)
        except Exception as err:  # a sampler must not die of a passing error
            logger.warning(
                "could not read the queue depth: %s queue_url=%s", error_code(err), self._url
            )
            return False
        self._record(self._url, depth.visible, depth.in_flight, depth.delayed)
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval)

    def stop(self) -> None:
        """Stop sampling (idempotent); waits up to 5 s for a read in progress."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


class _Every:
    """Calls ``action`` every ``interval`` seconds in a daemon thread, from now until
    ``stop()``."""

    def __init__(self, interval: float, action: Callable[[], object]) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, args=(interval, action), name="sqsx-metrics", daemon=True
        )
        self._thread.start()

    def _loop(self, interval: float, action: Callable[[], object]) -> None:
        while not self._stop.is_set():
            try:
                action()
            except Exception:  # the loop must survive; the next tick tries again
                logger.exception("a metrics refresh failed")
            self._stop.wait(interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _sent_at(raw: Any) -> float | None:
    """``SentTimestamp`` (milliseconds since the epoch) in seconds, if present."""
    value = (raw.get("Attributes") or {}).get("SentTimestamp")
    try:
        return int(value) / 1000 if value is not None else None
    except (TypeError, ValueError):
        return None


def worker_info() -> dict[str, str]:
    """The labels of ``sqsx_worker_info``."""
    from sqsx import __version__

    return {"version": str(__version__), "runtime": "worker"}


def multiprocess() -> bool:
    """True when ``prometheus_client`` writes its values to files for another process to
    serve (``PROMETHEUS_MULTIPROC_DIR`` was set when it was imported)."""
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue
