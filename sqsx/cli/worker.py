"""``sqsx worker``: consume a queue with live progress, stop on signals, print a summary."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from sqsx.cli.progress import format_summary, make_reporter
from sqsx.cli.target import CommandFailed, load_queue, with_overrides
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
    configure_logging(args.log_level)
    queue = with_overrides(
        load_queue(args.target, args.app_dir),
        queue_url=args.queue_url,
        endpoint_url=args.endpoint_url,
        pool=args.threads + _SPARE_CONNECTIONS,
    )
    options = ConsumeOptions(
        max_messages=args.max_messages,
        max_threads=args.threads,
        polling_wait_seconds=args.polling_wait,
        wait_seconds=0 if args.polling_wait else 1,
        stop_timeout=args.stop_timeout,
        drain=args.drain,
    )
    try:
        total = read_depth(queue.sqs_client, queue.url).total
        on_queue = f"{total:,} message{'' if total == 1 else 's'} on the queue"
    except (ClientError, BotoCoreError) as err:
        # --drain reads the depth to know when to stop; without credentials nothing works
        if args.drain or is_missing_queue(err) or is_bad_credentials(err):
            raise CommandFailed(f"cannot read {queue.url}: {describe_error(err)}") from err
        on_queue = f"queue depth unknown ({error_code(err)})"  # consuming may be allowed
    say(
        f"sqsx worker: {queue.url}, {on_queue}, "
        f"{args.threads} threads, up to {args.max_messages} per receive"
        + (", stopping once drained" if args.drain else "")
    )
    reporter = make_reporter(
        queue, drain=args.drain, interval=args.progress_interval, stream=sys.stderr
    )
    started = time.monotonic()
    failure: QueueUnavailableError | None = None
    handler = reporter.log_handler() if reporter else None
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
    ending, code = _ending(queue, queue.stop_signals, args.drain)
    if failure is not None:
        ending, code = f"stopped: {failure}", 1
    say(format_summary(snapshot, time.monotonic() - started, ending))
    if queue.forced_stop and snapshot.in_flight:
        say(
            f"  {snapshot.in_flight} running handler(s) abandoned: their messages reappear "
            "once their visibility timeout ends"
        )
    return code


def _ending(queue: BaseQueue, received: Sequence[int], drain: bool) -> tuple[str, int]:
    """How the run ended, and the exit code that says it."""
    if queue.forced_stop:
        last = received[-1] if received else signal.SIGINT
        return f"stopped at once ({signal.Signals(last).name} twice)", 128 + int(last)
    if received:
        return f"stopped gracefully ({signal.Signals(received[0]).name})", 0
    return ("drained" if drain else "stopped"), 0


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``; boto3, botocore and urllib3 only from WARNING."""
    logging.basicConfig(level=level, format=_LOG_FORMAT, stream=sys.stderr, force=True)
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
