"""``sqsx worker --metrics-port`` and ``--log-format json``: the worker's observability,
loaded only when asked for."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, TextIO

from sqsx.cli.target import CommandFailed
from sqsx.queue import BaseQueue

if TYPE_CHECKING:
    from sqsx.cli.supervisor import Fleet

__all__ = ["fleet_observed", "json_formatter", "line_logger", "log_say", "observe"]


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
        from sqsx.metrics import PrometheusMetrics, multiprocess
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
    server = None
    if args.supervised_fd is None or not multiprocess():  # else the supervisor serves
        try:
            server = metrics.serve(port, host=args.metrics_host)
        except OSError as err:
            raise CommandFailed(
                f"cannot serve metrics on {args.metrics_host}:{port}: {err}"
            ) from err
    for queue in queues:
        metrics.watch(queue)

    def stop() -> None:
        metrics.close()
        if server is not None:
            server.shutdown()

    return stop


def fleet_observed(args: argparse.Namespace, fleet: Fleet) -> AbstractContextManager[object]:
    """What ``--processes N`` serves while its children run: the children's metrics, merged
    (see ``sqsx.cli.fleetmetrics``), with ``--metrics-port``; else nothing."""
    if getattr(args, "metrics_port", None) is None:
        return nullcontext()
    from sqsx.cli.fleetmetrics import fleet_metrics

    return fleet_metrics(args, fleet)


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
