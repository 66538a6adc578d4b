"""``sqsx worker``: consume a queue (or several, as a ``QueueGroup``) with live progress,
stop on signals, print a summary (per queue too, for several)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from botocore.exceptions import BotoCoreError, ClientError

from sqsx.cli.link import SupervisorLink
from sqsx.cli.observe import fleet_observed, json_formatter, line_logger, log_say, observe
from sqsx.cli.overrun import DEFAULT_HARD_KILL_AFTER, EXIT_IGNORED_LIMIT, OverrunWatch, exit_now
from sqsx.cli.progress import (
    CounterLines,
    Reporter,
    describe_stop,
    format_queue_lines,
    format_summary,
    make_reporter,
)
from sqsx.cli.supervisor import Fleet, child_argv, supervise
from sqsx.cli.target import CommandFailed, UsageError, load_queue, with_overrides
from sqsx.cli.watchdog import refuse_without_fleet
from sqsx.exceptions import ConfigurationError, QueueUnavailableError
from sqsx.group import QueueGroup
from sqsx.options import ConsumeOptions
from sqsx.queue import BaseQueue
from sqsx.sqs import describe_error, error_code, is_bad_credentials, is_missing_queue, read_depth
from sqsx.stats import StatsSnapshot

__all__ = ["run_worker"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Connections of a client made for --endpoint-url, beyond one per handler thread.
_SPARE_CONNECTIONS = 10


class _Consumable(Protocol):
    """What the worker runs: a queue, or a ``QueueGroup`` of several."""

    def run(self, options: ConsumeOptions, *, enable_signal_to_exit_gracefully: bool) -> None: ...

    def stats(self) -> StatsSnapshot: ...

    def exit_gracefully(self, *, force: bool = False) -> None: ...

    @property
    def forced_stop(self) -> bool: ...

    @property
    def stop_signals(self) -> tuple[int, ...]: ...


def run_worker(args: argparse.Namespace) -> int:
    """Run ``sqsx worker`` with parsed ``args``; returns the exit code.

    Raises:
        UsageError: ``MODULE:ATTR`` does not name a queue.
        CommandFailed: the queue cannot be read (no such queue, endpoint unreachable).
    """
    json_logs = getattr(args, "log_format", "text") == "json"
    configure_logging(args.log_level, json_logs=json_logs)
    refuse_without_fleet(args)
    if len(args.target) > 1 and args.queue_url:
        raise UsageError(
            "--queue-url (or $SQSX_QUEUE_URL) names one queue: with several MODULE:ATTR, "
            "each queue's URL comes from its module"
        )
    weights = getattr(args, "weights", None)
    if weights is not None and len(weights) != len(args.target):
        raise UsageError(f"--weights: give one weight per queue ({len(args.target)})")
    if args.processes > 1:
        return _run_fleet(args)
    queues = [
        with_overrides(
            load_queue(target, args.app_dir),
            queue_url=args.queue_url,
            endpoint_url=args.endpoint_url,
            pool=args.threads + _SPARE_CONNECTIONS,
        )
        for target in args.target
    ]
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
    try:
        queue: _Consumable = queues[0] if len(queues) == 1 else QueueGroup(queues, weights=weights)
    except ConfigurationError as err:  # the same queue twice
        raise UsageError(str(err)) from err
    stop_observing = observe(queues, args, json_logs=json_logs)
    try:
        return _run_one(queue, queues, options, args, json_logs)
    finally:
        stop_observing()


def _run_one(
    queue: _Consumable,
    queues: Sequence[BaseQueue],
    options: ConsumeOptions,
    args: argparse.Namespace,
    json_logs: bool,
) -> int:
    tell = log_say if json_logs else say
    depths = [_depth_line(member, drain=args.drain) for member in queues]
    url = ", ".join(member.url for member in queues)
    on_queue = "; ".join(depths)
    limits = (", stopping once drained" if args.drain else "") + _job_limits(args)
    link = SupervisorLink(args.supervised_fd) if args.supervised_fd is not None else None
    reporter = None
    overrun: list[OverrunWatch] = []
    if link is not None:  # a child of --processes N: the supervisor speaks for it
        link.watch(queue.exit_gracefully)  # stop when the supervisor goes away
        link.send("ready", url=url, on_queue=on_queue, limits=limits)
        by_queue = queue.stats_by_queue if isinstance(queue, QueueGroup) else None
        stop_reporting = link.report_every(queue.stats, by_queue)
        overrun = [
            _watch_overruns(member, queue.exit_gracefully, link, args.hard_kill_after)
            for member in queues
        ]
    else:
        if len(queues) == 1:
            tell(
                f"sqsx worker: {url}, {on_queue}, "
                f"{args.threads} threads, up to {args.max_messages} per receive{limits}"
            )
        else:
            tell(_group_line(queues, depths, args, limits))
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
        for watch in overrun:
            watch.close()
        tripped = next((watch for watch in overrun if watch.tripped), None)
        if tripped is not None and failure is None:
            ending, code = tripped.ending(), EXIT_IGNORED_LIMIT
        each = queue.stats_by_queue() if isinstance(queue, QueueGroup) else None
        link.report("final", snapshot, each, ending=ending, code=code)
        if tripped is not None:  # its runaway handler could hold the interpreter's exit
            exit_now(code)
    else:
        tell(format_summary(snapshot, time.monotonic() - started, ending))
        if isinstance(queue, QueueGroup):
            tell(format_queue_lines(queue.stats_by_queue()))
        if queue.forced_stop and snapshot.in_flight:
            tell(
                f"  {snapshot.in_flight} running handler(s) abandoned: their messages "
                "reappear once their visibility timeout ends"
            )
    return code


def _watch_overruns(
    queue: BaseQueue,
    stop: Callable[[], None],
    link: SupervisorLink,
    hard_kill_after: float | None,
) -> OverrunWatch:
    """Watch a supervised child's abandoned handlers of ``queue`` (``sqsx.cli.overrun``);
    ``stop`` stops the whole child (every queue it consumes)."""
    watch = OverrunWatch(
        queue.dispatcher.time_limits,
        link,
        stop,
        hard_kill_after=DEFAULT_HARD_KILL_AFTER if hard_kill_after is None else hard_kill_after,
        queue_url=queue.url,
    )
    watch.start()
    return watch


def _group_line(
    queues: Sequence[BaseQueue], depths: Sequence[str], args: argparse.Namespace, limits: str
) -> str:
    """The startup lines of a worker on several queues: the shared threads, then each
    queue with its weight and depth."""
    weights = args.weights or (1,) * len(queues)
    lines = [
        f"sqsx worker: {len(queues)} queues, {args.threads} threads shared, "
        f"up to {args.max_messages} per receive{limits}"
    ]
    for member, weight, depth in zip(queues, weights, depths, strict=True):
        lines.append(f"  {member.url} (weight {weight}): {depth}")
    return "\n".join(lines)


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
    queue: _Consumable, options: ConsumeOptions, reporter: Reporter | None, *, swap_logs: bool
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
    if args.kill_silent_after is not None:
        fleet.kill_silent_after = args.kill_silent_after
    reporter = CounterLines(fleet, args.progress_interval, sys.stderr)
    started = time.monotonic()
    start = reporter.start if args.progress_interval > 0 else lambda: None
    try:
        with fleet_observed(args, fleet):
            ending, code = supervise(fleet, args, say, on_ready=start)
    finally:
        reporter.stop()
    say(format_summary(fleet.stats(), time.monotonic() - started, ending))
    by_queue = fleet.stats_by_queue()
    if by_queue:
        say(format_queue_lines(by_queue))
    return code


def _ending(queue: _Consumable, received: Sequence[int], drain: bool) -> tuple[str, int]:
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
