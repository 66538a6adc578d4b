"""``sqsx worker``: consume a queue with live progress, stop on signals, print a summary."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from sqsx.cli.link import SupervisorLink
from sqsx.cli.observe import json_formatter, line_logger, log_say, observe, refuse_fleet_metrics
from sqsx.cli.progress import (
    CounterLines,
    Reporter,
    describe_stop,
    format_summary,
    make_reporter,
)
from sqsx.cli.supervisor import Fleet, child_argv, supervise
from sqsx.cli.target import CommandFailed, UsageError, load_queue, with_overrides
from sqsx.exceptions import QueueUnavailableError
from sqsx.options import ConsumeOptions
from sqsx.queue import BaseQueue
from sqsx.sqs import describe_error, error_code, is_bad_credentials, is_missing_queue, read_depth

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
    refuse_fleet_metrics(args)
    if args.processes > 1:
        return _run_fleet(args)
    queue = with_overrides(
        load_queue(args.target, args.app_dir),
        queue_url=args.queue_url,
        endpoint_url=args.endpoint_url,
        pool=args.threads + _SPARE_CONNECTIONS,
    )
    options = ConsumeOptions(
        max_messages=args.max_messages,
        max_threads=args.threads,
        max_async=args.max_async,
        polling_wait_seconds=args.polling_wait,
        wait_seconds=0 if args.polling_wait else 1,
        stop_timeout=args.stop_timeout,
        drain=args.drain,
        max_messages_total=args.max_messages_total,
        exit_when_idle_seconds=args.exit_when_idle,
    )
    stop_observing = observe(queue, args, json_logs=json_logs)
    try:
        return _run_one(queue, options, args, json_logs)
    finally:
        stop_observing()


def _run_one(
    queue: BaseQueue, options: ConsumeOptions, args: argparse.Namespace, json_logs: bool
) -> int:
    tell = log_say if json_logs else say
    on_queue = _depth_line(queue, drain=args.drain)
    limits = (", stopping once drained" if args.drain else "") + _job_limits(args)
    link = SupervisorLink(args.supervised_fd) if args.supervised_fd is not None else None
    reporter = None
    if link is not None:  # a child of --processes N: the supervisor speaks for it
        link.watch(queue.exit_gracefully)  # stop when the supervisor goes away
        link.send("ready", url=queue.url, on_queue=on_queue, limits=limits)
        stop_reporting = link.report_every(queue.stats)
    else:
        tell(
            f"sqsx worker: {queue.url}, {on_queue}, "
            f"{args.threads} threads, up to {args.max_messages} per receive{limits}"
        )
        reporter = make_reporter(
            queue,
            drain=args.drain,
            interval=args.progress_interval,
            stream=line_logger() if json_logs else sys.stderr,
        )
    started = time.monotonic()
    failure = _consume(queue, options, reporter, swap_logs=not json_logs)
    snapshot = queue.stats()
    ending, code = _ending(queue, queue.stop_signals, args.drain)
    if code == 0 and not queue.stop_signals:
        ending = _limit_ending(args, snapshot.received) or ending
    if failure is not None:
        ending, code = f"stopped: {failure}", 1
    if link is not None:
        stop_reporting()
        link.report("final", snapshot, ending=ending, code=code)
    else:
        tell(format_summary(snapshot, time.monotonic() - started, ending))
        if queue.forced_stop and snapshot.in_flight:
            tell(
                f"  {snapshot.in_flight} running handler(s) abandoned: their messages "
                "reappear once their visibility timeout ends"
            )
    return code


def _depth_line(queue: BaseQueue, *, drain: bool) -> str:
    """The startup line's queue depth; raises ``CommandFailed`` when the queue is missing
    (or, with ``--drain``, which needs the depth, unreadable)."""
    try:
        total = read_depth(queue.sqs_client, queue.url).total
    except (ClientError, BotoCoreError) as err:
        # --drain reads the depth to know when to stop; without credentials nothing works
        if drain or is_missing_queue(err) or is_bad_credentials(err):
            raise CommandFailed(f"cannot read {queue.url}: {describe_error(err)}") from err
        return f"queue depth unknown ({error_code(err)})"  # consuming may be allowed
    return f"{total:,} message{'' if total == 1 else 's'} on the queue"


def _consume(
    queue: BaseQueue, options: ConsumeOptions, reporter: Reporter | None, *, swap_logs: bool
) -> QueueUnavailableError | None:
    """Run the queue with signal handlers and the reporter; the error that ended it, if SQS
    refused the queue."""
    handler = reporter.log_handler() if reporter and swap_logs else None
    restore = _swap_log_handler(handler) if handler else None
    if reporter:
        reporter.start()
    try:
        queue.run(options, enable_signal_to_exit_gracefully=True)
    except QueueUnavailableError as err:
        return err
    finally:
        if reporter:
            reporter.stop()
        if restore:
            restore()
    return None


def _run_fleet(args: argparse.Namespace) -> int:
    """``--processes N``: N children under a supervisor, one summary for all of them."""
    if args.max_messages_total is not None and args.max_messages_total < args.processes:
        raise UsageError(
            f"--max-messages-total ({args.max_messages_total}) must be at least "
            f"--processes ({args.processes}): each process takes its share"
        )
    fleet = Fleet(child_argv(args.worker_parser, args), args.processes, args.max_messages_total)
    reporter = CounterLines(fleet, args.progress_interval, sys.stderr)
    started = time.monotonic()
    start = reporter.start if args.progress_interval > 0 else lambda: None
    try:
        ending, code = supervise(fleet, args, say, on_ready=start)
    finally:
        reporter.stop()
    say(format_summary(fleet.stats(), time.monotonic() - started, ending))
    return code


def _ending(queue: BaseQueue, received: Sequence[int], drain: bool) -> tuple[str, int]:
    """How the run ended, and the exit code that says it."""
    stopped = describe_stop(forced=queue.forced_stop, signals=received)
    return stopped or (("drained" if drain else "stopped"), 0)


def _job_limits(args: argparse.Namespace) -> str:
    """The startup line's note on ``--max-messages-total`` / ``--exit-when-idle``."""
    notes = []
    if args.max_messages_total is not None:
        notes.append(f"exiting after {args.max_messages_total:,} messages")
    if args.exit_when_idle is not None:
        notes.append(f"exiting after {args.exit_when_idle:g} s idle")
    return "".join(f", {note}" for note in notes)


def _limit_ending(args: argparse.Namespace, received: int) -> str | None:
    """How a run without a signal ended, when a job limit ended it."""
    if args.max_messages_total is not None and received >= args.max_messages_total:
        return f"done with its {args.max_messages_total:,} messages (--max-messages-total)"
    if args.exit_when_idle is not None and not args.drain:
        return f"idle for {args.exit_when_idle:g} s (--exit-when-idle)"
    return None


def configure_logging(level: str, *, json_logs: bool = False) -> None:
    """Log to stderr at ``level`` (as JSON lines with ``json_logs``); boto3, botocore and
    urllib3 only from WARNING."""
    logging.basicConfig(level=level, format=_LOG_FORMAT, stream=sys.stderr, force=True)
    if json_logs:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(json_formatter())
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


def say(text: str) -> None:
    """Print ``text`` on stderr (the CLI's own messages; stdout is for results)."""
    print(text, file=sys.stderr, flush=True)
