"""The ``sqsx`` command: ``worker``, ``local``, ``send``, ``stats`` and ``dlq``.

Exit codes:

- 0: done (a worker drained, or stopped gracefully after a signal);
- 1: a failure outside the command line (SQS refused or could not be reached, the
  port is taken, moto is not installed);
- 2: a bad invocation (bad arguments, a ``MODULE:ATTR`` that does not load or is not a
  queue, bad ``--kwargs``);
- 128 + the signal's number (130 for SIGINT, 143 for SIGTERM): a worker stopped by a
  second signal without waiting for its running handlers.
- 75: only between a child of ``worker --processes N`` and its supervisor, which restarts
  it: a handler ran past its hard deadline (``sqsx.cli.overrun``).

Only this package imports ``rich`` (lazily, for the progress bar) and ``sqsx.local``.
"""

from __future__ import annotations

import argparse
import gc
import os
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sqsx import __version__
from sqsx.cli.dlq import add_dlq_parser
from sqsx.cli.target import CommandFailed, UsageError
from sqsx.cli.tools import run_local, run_send, run_stats
from sqsx.cli.worker import run_worker, say
from sqsx.lanes import DEFAULT_MAX_COROUTINES, MAX_COROUTINES_LIMIT
from sqsx.sqs import error_code

__all__ = ["build_parser", "main"]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sqsx`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit
    code. Errors get one line on stderr, ``sqsx COMMAND: error: ...``, not a traceback.

    Meant to be the last call of a process: it freezes the garbage collector's objects
    (``gc.freeze``) on the way out."""
    args = build_parser().parse_args(argv)
    prefix = f"sqsx {args.command}: error:"
    try:
        code: int = args.run(args)
    except UsageError as err:
        say(f"{prefix} {err}")
        return EXIT_USAGE
    except CommandFailed as err:
        say(f"{prefix} {err}")
        return EXIT_FAILURE
    except (ClientError, BotoCoreError) as err:
        say(f"{prefix} {error_code(err)}: {err}")
        return EXIT_FAILURE
    except KeyboardInterrupt:  # Ctrl-C before a command installed its own handlers
        return EXIT_INTERRUPTED
    finally:
        # The process exits next: spare it the final garbage collection of boto3's models,
        # most of a second on a busy machine, between a worker's summary and its exit.
        gc.freeze()
    return code


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sqsx`` command."""
    parser = argparse.ArgumentParser(prog="sqsx", description="A task processor for Amazon SQS.")
    parser.add_argument("--version", action="version", version=f"sqsx {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _worker_parser(commands.add_parser("worker", help="consume a queue until stopped or drained"))
    _local_parser(commands.add_parser("local", help="embedded SQS and S3 (moto) on 127.0.0.1"))
    _send_parser(commands.add_parser("send", help="enqueue tasks"))
    _stats_parser(commands.add_parser("stats", help="a queue's depth and its DLQ's"))
    add_dlq_parser(commands)
    return parser


def _worker_parser(worker: argparse.ArgumentParser) -> None:
    _target_arguments(worker, many=True)
    add = worker.add_argument
    add(
        "--weights",
        type=_weights,
        default=None,
        metavar="W1,W2,...",
        help="with several queues: one whole number per queue, 1 to 1000; while several "
        "have work, each gets its weight's share of the threads (default: all 1)",
    )
    add("--threads", type=_bounded(int, 1, 1024), default=8, help="handler threads (default 8)")
    add(
        "--max-async",
        type=_bounded(int, 1, MAX_COROUTINES_LIMIT),
        default=DEFAULT_MAX_COROUTINES,
        help="coroutines of async def handlers running at once, holding no thread "
        f"(default {DEFAULT_MAX_COROUTINES})",
    )
    add(
        "--processes",
        type=_bounded(int, 1, 256),
        default=1,
        help="worker processes, each with --threads threads, under one supervisor (default 1)",
    )
    add(
        "--max-messages",
        type=_bounded(int, 1, 10),
        default=10,
        help="messages per ReceiveMessage call, 1 to 10 (default 10)",
    )
    add(
        "--polling-wait",
        type=_bounded(int, 0, 20),
        default=10,
        help="long-polling seconds per receive, 0 to 20 (default 10)",
    )
    add(
        "--stop-timeout",
        type=_bounded(float, 0),
        default=None,
        help="seconds running handlers get to finish after a stop request (default: no limit)",
    )
    add("--drain", action="store_true", help="exit once the queue is empty and nothing runs")
    add(
        "--max-messages-total",
        type=_bounded(int, 1),
        default=None,
        metavar="N",
        help="receive N messages, finish them and exit 0 (default: no limit)",
    )
    add(
        "--exit-when-idle",
        type=_bounded(float, 0.1),
        default=None,
        metavar="SECONDS",
        help="exit 0 once no message was received or running for SECONDS (default: never)",
    )
    _log_level_argument(worker)
    add(
        "--progress-interval",
        type=_bounded(float, 0),
        default=5.0,
        help="seconds between progress lines; 0 shows no progress (default 5)",
    )
    add("--supervised-fd", type=int, default=None, help=argparse.SUPPRESS)  # set by supervisor
    add(
        "--hard-kill-after",
        type=_bounded(float, 0),
        default=None,
        metavar="SECONDS",
        help="with --processes: restart a process whose handler still runs SECONDS after it "
        "was abandoned past its time limit and grace (default 30)",
    )
    add(
        "--kill-silent-after",
        type=_bounded(float, 2),
        default=None,
        metavar="SECONDS",
        help="with --processes: kill and restart a process that sent nothing for SECONDS "
        "(a handler holding the GIL; default 60)",
    )
    add(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="json: one JSON object per line, with message_id, task and queue_url on "
        "per-message lines (default text)",
    )
    add(
        "--metrics-port",
        type=_bounded(int, 0, 65535),
        default=None,
        help="serve Prometheus metrics on this port at /metrics (needs sqsx[metrics]; "
        "0 picks a free port; with --processes N, the supervisor serves them all)",
    )
    add(
        "--metrics-host",
        default="127.0.0.1",
        help="address the metrics listener binds (default 127.0.0.1; 0.0.0.0 for all)",
    )
    worker.set_defaults(run=run_worker, worker_parser=worker)


def _local_parser(local: argparse.ArgumentParser) -> None:
    add = local.add_argument
    add("--port", type=_bounded(int, 0, 65535), default=9324, help="default 9324; 0 picks one")
    add("--queue", action="append", default=[], metavar="NAME", help="create this queue")
    add("--with-dlq", action="store_true", help="give each --queue a NAME-dlq dead-letter queue")
    add("--bucket", action="append", default=[], metavar="NAME", help="create this S3 bucket")
    add(
        "--max-receives",
        type=_bounded(int, 1, 1000),
        default=5,
        help="receives before a message is dead-lettered, with --with-dlq (default 5)",
    )
    add(
        "--no-content-based-deduplication",
        action="store_true",
        help="create .fifo queues without ContentBasedDeduplication",
    )
    local.set_defaults(run=run_local)


def _send_parser(send: argparse.ArgumentParser) -> None:
    _target_arguments(send)
    add = send.add_argument
    add("task_name", metavar="TASK_NAME")
    add("--kwargs", default="{}", help="the task's arguments, a JSON object (default {})")
    add("--count", type=_bounded(int, 1), default=1, help="copies to send (default 1)")
    add("--group-id", help="MessageGroupId, required for FIFO queues")
    _log_level_argument(send)
    add(
        "--no-check",
        action="store_true",
        help="send even if the module has no handler for TASK_NAME or --kwargs do not fit it",
    )
    send.set_defaults(run=run_send)


def _stats_parser(stats: argparse.ArgumentParser) -> None:
    add = stats.add_argument
    add(
        "queue_url",
        metavar="QUEUE_URL",
        nargs="?",
        default=os.environ.get("SQSX_QUEUE_URL"),
        help="default: $SQSX_QUEUE_URL",
    )
    add("--endpoint-url", default=os.environ.get("SQSX_ENDPOINT_URL"), help="$SQSX_ENDPOINT_URL")
    add("--json", action="store_true", help="print a JSON object")
    stats.set_defaults(run=run_stats)


def _log_level_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        type=str.upper,
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default INFO",
    )


def _target_arguments(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    add = parser.add_argument
    if many:
        add(
            "target",
            metavar="MODULE:ATTR",
            nargs="+",
            help="a Queue/RawQueue, or a function returning one; several: one worker "
            "consumes them all on shared threads",
        )
    else:
        add("target", metavar="MODULE:ATTR", help="a Queue/RawQueue, or a function returning one")
    add(
        "--queue-url",
        default=os.environ.get("SQSX_QUEUE_URL"),
        help="use this queue URL instead of the module's (default: $SQSX_QUEUE_URL; one "
        "queue only)",
    )
    add(
        "--endpoint-url",
        default=os.environ.get("SQSX_ENDPOINT_URL"),
        help="send SQS requests here, e.g. http://127.0.0.1:9324 (default: $SQSX_ENDPOINT_URL)",
    )
    add("--app-dir", default=".", help="directory put on sys.path before importing (default .)")


def _weights(text: str) -> tuple[int, ...]:
    """An argparse type: ``3,1`` -> ``(3, 1)``, each from 1 to 1000."""
    parse = _bounded(int, 1, 1000)
    return tuple(parse(part.strip()) for part in text.split(","))


def _bounded(kind: Callable[[str], Any], low: float, high: float | None = None) -> Any:
    """An argparse type: ``kind(text)`` between ``low`` and ``high`` (inclusive)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from err
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse
