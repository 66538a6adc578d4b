"""``sqsx dlq ls|peek|redrive|replay``: the dead-letter queue of a source queue.

QUEUE is the source queue (the one whose ``RedrivePolicy`` names the dead-letter queue), as
a URL or as ``MODULE:ATTR``. ``ls`` and ``peek`` read (``sqsx.cli.deadletter``);
``redrive`` and ``replay`` move or process (``sqsx.cli.redrive``).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from sqsx.cli.deadletter import find_dead_letter_queue, run_ls, run_peek
from sqsx.cli.redrive import run_redrive, run_replay
from sqsx.cli.target import UsageError, load_queue, make_client, region_of, with_overrides
from sqsx.queue import BaseQueue
from sqsx.sqs import read_depth

__all__ = ["add_dlq_parser", "run_dlq"]


def add_dlq_parser(commands: Any) -> None:
    """Add ``sqsx dlq`` and its four subcommands to the ``sqsx`` subparsers."""
    dlq = commands.add_parser("dlq", help="a queue's dead-letter queue: ls, peek, redrive, replay")
    actions = dlq.add_subparsers(dest="action", required=True, metavar="SUBCOMMAND")
    ls = _with_queue(actions.add_parser("ls", help="the dead-letter queue, its depth and age"))
    ls.add_argument("--json", action="store_true", help="print a JSON object")
    peek = _with_queue(actions.add_parser("peek", help="show messages without deleting them"))
    peek.add_argument("-n", "--count", type=int, default=10, help="messages, 1 to 100 (10)")
    peek.add_argument("--body", action="store_true", help="print each message's body too")
    peek.add_argument("--json", action="store_true", help="print a JSON list")
    redrive = _with_queue(
        actions.add_parser("redrive", help="move them back (StartMessageMoveTask)")
    )
    redrive.add_argument("--rate", type=int, help="messages per second, 1 to 500 (SQS's default)")
    redrive.add_argument("--cancel", action="store_true", help="cancel the running redrive")
    redrive.add_argument("--no-wait", action="store_true", help="start it and return")
    replay = _with_queue(actions.add_parser("replay", help="run them through the handlers here"))
    replay.add_argument("--max", type=int, help="messages to replay (default: the visible ones)")
    replay.add_argument(
        "--visibility-timeout",
        type=int,
        default=60,
        help="seconds a received message stays hidden while it is replayed (default 60)",
    )
    dlq.set_defaults(run=run_dlq)


def _with_queue(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add = parser.add_argument
    add(
        "queue",
        metavar="QUEUE_URL|MODULE:ATTR",
        nargs="?",
        default=os.environ.get("SQSX_QUEUE_URL"),
        help="the source queue, whose RedrivePolicy names the DLQ (default: $SQSX_QUEUE_URL)",
    )
    add("--endpoint-url", default=os.environ.get("SQSX_ENDPOINT_URL"), help="$SQSX_ENDPOINT_URL")
    add("--queue-url", help="with MODULE:ATTR: the source queue's URL instead of the module's")
    add("--app-dir", default=".", help="directory put on sys.path for MODULE:ATTR (default .)")
    return parser


def run_dlq(args: argparse.Namespace) -> int:
    """Run ``sqsx dlq SUBCOMMAND``; returns the exit code.

    Raises:
        UsageError: no queue, a bad option, or a queue that is not the source of a DLQ.
        CommandFailed: nothing to cancel; some messages could not be released.
    """
    client, source_url, queue = _source(args)
    dlq = find_dead_letter_queue(client, source_url)
    if dlq is None:
        raise UsageError(_not_a_source(client, source_url))
    if args.action == "ls":
        return run_ls(client, dlq, args.json)
    if args.action == "peek":
        return run_peek(client, dlq, _bounded("--count", args.count, 1, 100), args.body, args.json)
    if args.action == "redrive":
        rate = None if args.rate is None else _bounded("--rate", args.rate, 1, 500)
        return run_redrive(client, dlq, rate=rate, cancel=args.cancel, wait=not args.no_wait)
    if queue is None:
        raise UsageError("replay runs the module's handlers: give MODULE:ATTR, not a URL")
    limit = read_depth(client, dlq.url).visible if args.max is None else args.max
    hold = _bounded("--visibility-timeout", args.visibility_timeout, 1, 43_200)
    return run_replay(queue, dlq, _bounded("--max", limit, 0, 1_000_000), hold)


def _source(args: argparse.Namespace) -> tuple[Any, str, BaseQueue | None]:
    spec = args.queue
    if not spec:
        raise UsageError("give QUEUE_URL or MODULE:ATTR (or set SQSX_QUEUE_URL)")
    if spec.startswith(("http://", "https://")):
        return make_client(args.endpoint_url, region=region_of(spec)), spec, None
    queue = load_queue(spec, args.app_dir)
    queue = with_overrides(queue, queue_url=args.queue_url, endpoint_url=args.endpoint_url)
    return queue.sqs_client, queue.url, queue


def _not_a_source(client: Any, url: str) -> str:
    text = f"{url} has no RedrivePolicy, so it is not the source queue of any dead-letter queue"
    try:
        sources = client.list_dead_letter_source_queues(QueueUrl=url).get("queueUrls", [])
    except (ClientError, BotoCoreError):  # only a hint; the refusal stands without it
        sources = []
    if sources:
        return f"{text}; it is the dead-letter queue of {sources[0]}: give that URL"
    return f"{text} (give the queue whose RedrivePolicy names the DLQ)"


def _bounded(option: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise UsageError(f"{option} must be from {low:,} to {high:,}, got {value}")
    return value
