"""``sqsx worker``: consume a queue with live progress, stop on signals, print a summary."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from sqsx.cli.progress import format_summary, make_reporter
from sqsx.cli.target import CommandFailed, load_queue, with_overrides
from sqsx.exceptions import QueueUnavailableError
from sqsx.options import ConsumeOptions
from sqsx.queue import BaseQueue
from sqsx.sqs import error_code, is_missing_queue, read_depth

__all__ = ["run_worker"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Connections of a client made for --endpoint-url, beyond one per handler thread.
_SPARE_CONNECTIONS = 10


def run_worker(args: argparse.Namespace) -> int:
    """Run ``sqsx worker`` with parsed ``args``; returns the exit code.

    Raises:
        UsageError: ``MODULE:ATTR`` does not name a queue.
        CommandFailed: the queue cannot be read (no such queue, endpoint unreachable).
    """
    json_logs = getattr(args, "log_format", "text") == "json"
    configure_logging(args.log_level, json_logs=json_logs)
    queue = with_overrides(
        load_queue(args.target, args.app_dir),
        queue_url=args.queue_url,
        endpoint_url=args.endpoint_url,
        pool=args.threads + _SPARE_CONNECTIONS,
    )
    if json_logs:
        from sqsx.jsonlogs import LogScope

        queue.add_hook(LogScope())
    metrics = _start_metrics(queue, args)
    try:
        return _consume(queue, args, json_logs)
    finally:
        if metrics is not None:
            metrics()


def _consume(queue: BaseQueue, args: argparse.Namespace, json_logs: bool) -> int:
    tell = _log_say if json_logs else say
    options = ConsumeOptions(
        max_messages=args.max_messages,
        max_threads=args.threads,
        polling_wait_seconds=args.polling_wait,
        wait_seconds=0 if args.polling_wait else 1,
        stop_timeout=args.stop_timeout,
        drain=args.drain,
    )
    try:
        on_queue = f"{read_depth(queue.sqs_client, queue.url).total:,} messages on the queue"
    except (ClientError, BotoCoreError) as err:
        if args.drain or is_missing_queue(err):  # --drain reads the depth to know when to stop
            raise CommandFailed(f"cannot read {queue.url}: {error_code(err)}: {err}") from err
        on_queue = f"queue depth unknown ({error_code(err)})"  # consuming may be allowed
    tell(
        f"sqsx worker: {queue.url}, {on_queue}, "
        f"{args.threads} threads, up to {args.max_messages} per receive"
        + (", stopping once drained" if args.drain else "")
    )
    reporter = make_reporter(
        queue,
        drain=args.drain,
        interval=args.progress_interval,
        stream=_line_logger() if json_logs else sys.stderr,
    )
    started = time.monotonic()
    failure: QueueUnavailableError | None = None
    handler = reporter.log_handler() if reporter and not json_logs else None
    restore = _swap_log_handler(handler) if handler else None
    if reporter:
        reporter.start()
    try:
        queue.run(options, enable_signal_to_exit_gracefully=True)
    except QueueUnavailableError as err:
        failure = err
    finally:
        if reporter:
            reporter.stop()
        if restore:
            restore()
    snapshot = queue.stats()
    ending, code = _ending(queue, queue.stop_signals, snapshot.in_flight, args.drain)
    if failure is not None:
        ending, code = f"stopped: {failure}", 1
    tell(format_summary(snapshot, time.monotonic() - started, ending))
    return code


def _ending(
    queue: BaseQueue, received: Sequence[int], abandoned: int, drain: bool
) -> tuple[str, int]:
    """How the run ended, and the exit code that says it."""
    if queue.forced_stop:
        last = received[-1] if received else signal.SIGINT
        return (
            f"stopped at once ({signal.Signals(last).name} twice), {abandoned} running "
            "handlers abandoned: their messages reappear after the visibility timeout",
            128 + int(last),
        )
    if received:
        return f"stopped gracefully ({signal.Signals(received[0]).name})", 0
    return ("drained" if drain else "stopped"), 0


def _start_metrics(queue: BaseQueue, args: argparse.Namespace) -> Callable[[], None] | None:
    """With ``--metrics-port``: count the queue's messages and SQS calls and serve them;
    returns what stops the listener and the depth sampler."""
    port = getattr(args, "metrics_port", None)
    if port is None:
        return None
    try:
        from sqsx.metrics import PrometheusMetrics
    except ImportError as err:
        raise CommandFailed(
            "--metrics-port needs prometheus_client: pip install 'sqsx[metrics]'"
        ) from err
    metrics = PrometheusMetrics()
    queue.add_hook(metrics)
    metrics.instrument_client(queue.sqs_client)
    try:
        server = metrics.serve(port, host=args.metrics_host)
    except OSError as err:
        raise CommandFailed(f"cannot serve metrics on {args.metrics_host}:{port}: {err}") from err
    metrics.watch(queue)

    def stop() -> None:
        metrics.close()
        server.shutdown()

    return stop


def configure_logging(level: str, *, json_logs: bool = False) -> None:
    """Log to stderr at ``level`` (as JSON lines with ``json_logs``); boto3, botocore and
    urllib3 only from WARNING."""
    logging.basicConfig(level=level, format=_LOG_FORMAT, stream=sys.stderr, force=True)
    if json_logs:
        from sqsx.jsonlogs import JsonFormatter

        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _swap_log_handler(handler: logging.Handler) -> Callable[[], None]:
    """Route root logging through ``handler``; returns the function that undoes it."""
    root = logging.getLogger()
    previous = list(root.handlers)
    handler.setLevel(root.level)
    root.handlers = [handler]

    def restore() -> None:
        root.handlers = previous

    return restore


def _log_say(text: str) -> None:
    logging.getLogger("sqsx.cli").info("%s", text)


def _line_logger() -> TextIO:
    from sqsx.jsonlogs import LineLogger

    stream: TextIO = LineLogger(logging.getLogger("sqsx.cli.progress"))  # type: ignore[assignment]
    return stream


def say(text: str) -> None:
    """Print ``text`` on stderr (the CLI's own messages; stdout is for results)."""
    print(text, file=sys.stderr, flush=True)
