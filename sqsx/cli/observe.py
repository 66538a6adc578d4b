"""``sqsx worker --metrics-port`` and ``--log-format json``: the worker's observability,
loaded only when asked for."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from typing import TextIO

from sqsx.cli.target import CommandFailed, UsageError
from sqsx.queue import BaseQueue

__all__ = ["json_formatter", "line_logger", "log_say", "observe"]


def observe(
    queues: Sequence[BaseQueue], args: argparse.Namespace, *, json_logs: bool
) -> Callable[[], None]:
    """Add the hooks ``args`` ask for (JSON log scope, Prometheus metrics and their
    listener) to each of ``queues`` (one registry and listener for all; every series has
    a ``queue`` label); returns what stops the listener and the depth samplers."""
    if json_logs:
        from sqsx.jsonlogs import LogScope

        for queue in queues:
            queue.add_hook(LogScope())
    port = getattr(args, "metrics_port", None)
    if port is None:
        return lambda: None
    try:
        from sqsx.metrics import PrometheusMetrics
    except ImportError as err:
        raise CommandFailed(
            "--metrics-port needs prometheus_client: pip install 'sqsx[metrics]'"
        ) from err
    metrics = PrometheusMetrics()
    clients: list[object] = []
    for queue in queues:
        queue.add_hook(metrics)
        if not any(client is queue.sqs_client for client in clients):
            metrics.instrument_client(queue.sqs_client)
            clients.append(queue.sqs_client)
    try:
        server = metrics.serve(port, host=args.metrics_host)
    except OSError as err:
        raise CommandFailed(f"cannot serve metrics on {args.metrics_host}:{port}: {err}") from err
    for queue in queues:
        metrics.watch(queue)

    def stop() -> None:
        metrics.close()
        server.shutdown()

    return stop


def refuse_fleet_metrics(args: argparse.Namespace) -> None:
    """``--metrics-port`` with ``--processes`` above 1 is not aggregated yet: refuse it
    rather than serve one child's figures (or fail on a taken port)."""
    if getattr(args, "metrics_port", None) is not None and args.processes > 1:
        raise UsageError(
            "--metrics-port works with --processes 1 only for now: run one worker per "
            "process (each with its own port) to scrape them all"
        )


def json_formatter() -> logging.Formatter:
    from sqsx.jsonlogs import JsonFormatter

    return JsonFormatter()


def log_say(text: str) -> None:
    """A progress or summary line, as a log record (JSON logs)."""
    logging.getLogger("sqsx.cli").info("%s", text)


def line_logger() -> TextIO:
    """A stream whose lines become log records (the progress bar, under JSON logs)."""
    from sqsx.jsonlogs import LineLogger

    stream: TextIO = LineLogger(logging.getLogger("sqsx.cli.progress"))  # type: ignore[assignment]
    return stream
