"""``sqsx dlq ls|peek|redrive|replay``: the dead-letter queue of a source queue.

QUEUE is the source queue (the one whose ``RedrivePolicy`` names the dead-letter queue), as
a URL or as ``MODULE:ATTR``. ``peek`` and ``ls`` receive messages to read them: each
receive counts, and the messages are made visible again at once (visibility 0).
``redrive`` is SQS's own ``StartMessageMoveTask``; ``replay`` runs the messages through the
module's handlers in this process, deleting those whose outcome deletes them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from sqsx.cli.target import (
    CommandFailed,
    UsageError,
    load_queue,
    make_client,
    region_of,
    with_overrides,
)
from sqsx.codec import message_size
from sqsx.dispatch import Verdict
from sqsx.message import Message
from sqsx.queue import BaseQueue
from sqsx.sqs import BatchEntry, change_visibility_batch, delete_batch, error_code, read_depth

__all__ = ["DeadLetterQueue", "add_dlq_parser", "find_dead_letter_queue", "run_dlq"]

#: Message attributes where a producer recorded why a message failed (Lambda's
#: asynchronous-invocation DLQs carry ErrorCode/ErrorMessage); SQS itself keeps none.
_ERROR_ATTRIBUTES = ("ErrorMessage", "ErrorCode", "ERROR_MESSAGE", "ERROR_CODE")
_DONE = frozenset({"COMPLETED", "CANCELLED", "FAILED"})


@dataclass(frozen=True, slots=True)
class DeadLetterQueue:
    """A source queue's dead-letter queue, from the source's ``RedrivePolicy``."""

    source_url: str
    url: str
    arn: str
    max_receive_count: int


def find_dead_letter_queue(client: Any, source_url: str) -> DeadLetterQueue | None:
    """The dead-letter queue ``source_url``'s RedrivePolicy names, or ``None``."""
    response = client.get_queue_attributes(QueueUrl=source_url, AttributeNames=["RedrivePolicy"])
    policy = response.get("Attributes", {}).get("RedrivePolicy")
    if not policy:
        return None
    redrive = json.loads(policy)
    arn = str(redrive["deadLetterTargetArn"])
    *_, account, name = arn.split(":")  # arn:aws:sqs:REGION:ACCOUNT:NAME
    url = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    return DeadLetterQueue(source_url, str(url), arn, int(redrive.get("maxReceiveCount", 0)))


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
        return _ls(client, dlq, args.json)
    if args.action == "peek":
        return _peek(client, dlq, _bounded("--count", args.count, 1, 100), args.body, args.json)
    if args.action == "redrive":
        return _redrive(client, dlq, args)
    if queue is None:
        raise UsageError("replay runs the module's handlers: give MODULE:ATTR, not a URL")
    limit = read_depth(client, dlq.url).visible if args.max is None else args.max
    hold = _bounded("--visibility-timeout", args.visibility_timeout, 1, 43_200)
    return _replay(queue, dlq, _bounded("--max", limit, 0, 1_000_000), hold)


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
    except Exception:  # only a hint; the refusal stands without it
        sources = []
    if sources:
        return f"{text}; it is the dead-letter queue of {sources[0]}: give that URL"
    return f"{text} (give the queue whose RedrivePolicy names the DLQ)"


def _bounded(option: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise UsageError(f"{option} must be from {low:,} to {high:,}, got {value}")
    return value


# -- ls and peek ------------------------------------------------------------------------------


def _ls(client: Any, dlq: DeadLetterQueue, as_json: bool) -> int:
    depth = read_depth(client, dlq.url)
    sample = _receive_and_release(client, dlq.url, 10, hold=5) if depth.visible else []
    sent = [_sent_at(message) for message in sample]
    oldest = min((at for at in sent if at is not None), default=None)
    report = {
        "source_queue_url": dlq.source_url,
        "dead_letter_queue_url": dlq.url,
        "max_receive_count": dlq.max_receive_count,
        "visible": depth.visible,
        "in_flight": depth.in_flight,
        "delayed": depth.delayed,
        "oldest_sent": oldest.isoformat() if oldest else None,
        "oldest_age_seconds": round(_age(oldest)) if oldest else None,
        "sampled": len(sample),
    }
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"source queue       {dlq.source_url}")
    print(f"dead-letter queue  {dlq.url} (after {dlq.max_receive_count} receives)")
    print(
        f"messages           {depth.visible:,} visible, {depth.in_flight:,} in flight, "
        f"{depth.delayed:,} delayed"
    )
    if oldest is not None:
        print(
            f"oldest message     sent {_duration(_age(oldest))} ago ({oldest:%Y-%m-%d %H:%M:%S} "
            f"UTC), of {len(sample)} sampled (a receive each, released at once)"
        )
    return 0


def _peek(client: Any, dlq: DeadLetterQueue, count: int, body: bool, as_json: bool) -> int:
    if not as_json:
        print(
            f"peeking at up to {count} messages of {dlq.url}: each is invisible for a moment "
            "and counts a receive; none is deleted"
        )
    messages = _receive_and_release(client, dlq.url, count, hold=30)
    rows = [_describe(message, body) for message in messages]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    for n, row in enumerate(rows, 1):
        print(
            f"{n:>3}. {row['message_id']}  task {row['task']}  receives "
            f"{row['receive_count']}  {row['size_bytes']:,} bytes  sent {row['sent']}"
        )
        print(f"     first error: {row['first_error'] or 'not recorded'}")
        if body:
            print(f"     body: {row['body']}")
    print(f"{len(rows)} message{'' if len(rows) == 1 else 's'} shown, all visible again")
    return 0


def _receive_and_release(client: Any, url: str, count: int, hold: int) -> list[dict[str, Any]]:
    """Up to ``count`` messages, hidden for ``hold`` s while they are read, then made
    visible again (visibility 0). Each receive counts toward their receive count."""
    seen: dict[str, dict[str, Any]] = {}
    try:
        for _ in range(count // 10 + 3):  # bounded: empty or repeated receives end it
            batch = client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, count - len(seen)),
                VisibilityTimeout=hold,
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            new = [m for m in batch if m["MessageId"] not in seen]
            seen.update((m["MessageId"], m) for m in new)
            if not new or len(seen) >= count:
                break
    finally:
        _release(client, url, list(seen.values()))
    return list(seen.values())


def _release(client: Any, url: str, messages: Sequence[dict[str, Any]]) -> None:
    entries = [BatchEntry(m["MessageId"], m["ReceiptHandle"], 0) for m in messages]
    failed = change_visibility_batch(client, url, entries) if entries else []
    if failed:
        raise CommandFailed(
            f"{len(failed)} messages could not be made visible again ({failed[0].code}); "
            "they come back when their visibility timeout ends"
        )


def _describe(message: dict[str, Any], with_body: bool) -> dict[str, Any]:
    attributes = message.get("MessageAttributes") or {}
    task = attributes.get("TaskName", {}).get("StringValue", "-")
    errors = [attributes[a].get("StringValue") for a in _ERROR_ATTRIBUTES if a in attributes]
    sent = _sent_at(message)
    row: dict[str, Any] = {
        "message_id": message["MessageId"],
        "task": task,
        "receive_count": int(message.get("Attributes", {}).get("ApproximateReceiveCount", 0)),
        "first_error": next((e for e in errors if e), None),
        "size_bytes": message_size(message.get("Body", ""), attributes),
        "sent": f"{sent:%Y-%m-%d %H:%M:%S} UTC" if sent else "-",
    }
    if with_body:
        row["body"] = message.get("Body", "")
    return row


def _sent_at(message: dict[str, Any]) -> datetime | None:
    stamp = message.get("Attributes", {}).get("SentTimestamp")
    return datetime.fromtimestamp(int(stamp) / 1000, tz=timezone.utc) if stamp else None


def _age(at: datetime) -> float:
    return max(0.0, (datetime.now(tz=timezone.utc) - at).total_seconds())


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    shown = [f"{value} {unit}" for value, unit in parts if value][:2]
    return " ".join(shown) or "0 s"


# -- redrive ----------------------------------------------------------------------------------


def _redrive(client: Any, dlq: DeadLetterQueue, args: argparse.Namespace) -> int:
    if args.cancel:
        running = [t for t in _move_tasks(client, dlq) if t.get("Status") == "RUNNING"]
        if not running:
            raise CommandFailed(f"no redrive is running from {dlq.url}")
        client.cancel_message_move_task(TaskHandle=running[0]["TaskHandle"])
        moved = running[0].get("ApproximateNumberOfMessagesMoved", 0)
        print(f"cancelling the redrive from {dlq.url} ({moved:,} messages moved so far)")
        return 0
    options = {}
    if args.rate is not None:
        options["MaxNumberOfMessagesPerSecond"] = _bounded("--rate", args.rate, 1, 500)
    # Without a DestinationArn each message goes back to the queue it came from, which is
    # right for a DLQ shared by several queues (StartMessageMoveTask, SQS API reference).
    try:
        client.start_message_move_task(SourceArn=dlq.arn, **options)
    except ClientError as err:
        raise CommandFailed(_move_refused(err)) from err
    print(f"redrive started: {dlq.url} -> the queue each message came from ({dlq.source_url})")
    if args.no_wait:
        return 0
    try:
        return _follow(client, dlq)
    except KeyboardInterrupt:
        print("stopped watching; the redrive goes on in SQS (`sqsx dlq redrive --cancel` stops it)")
        return 130


def _move_refused(err: ClientError) -> str:
    status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if status >= 500 or error_code(err) in {"InvalidAction", "UnsupportedOperation"}:
        return (
            f"the server cannot start a redrive (StartMessageMoveTask: {error_code(err)}); "
            "does it implement it? (moto does not: use `sqsx dlq replay`, or LocalStack)"
        )
    detail = str(err.response.get("Error", {}).get("Message", "")).splitlines()[:1]
    return f"SQS refused the redrive: {error_code(err)}: {''.join(detail)}"


def _follow(client: Any, dlq: DeadLetterQueue) -> int:
    shown = None
    while True:
        task = next(iter(_move_tasks(client, dlq)), {})
        status = str(task.get("Status", "RUNNING"))
        moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
        total = task.get("ApproximateNumberOfMessagesToMove")
        line = f"  {status.lower()}: moved {moved:,}" + (
            f" of {total:,}" if total is not None else ""
        )
        if line != shown:
            print(line, flush=True)
            shown = line
        if status in _DONE:
            break
        time.sleep(1)
    if status == "COMPLETED":
        return 0
    reason = task.get("FailureReason") or "cancelled"
    raise CommandFailed(f"the redrive ended {status}: {reason} ({moved:,} messages moved)")


def _move_tasks(client: Any, dlq: DeadLetterQueue) -> list[dict[str, Any]]:
    return list(client.list_message_move_tasks(SourceArn=dlq.arn, MaxResults=10)["Results"])


# -- replay -----------------------------------------------------------------------------------


def _replay(queue: BaseQueue, dlq: DeadLetterQueue, limit: int, hold: int) -> int:
    """Run up to ``limit`` messages of the DLQ through ``queue``'s handlers, one at a time;
    delete those whose outcome deletes them; release the rest at the end (visibility 0)."""
    client = queue.sqs_client
    print(f"replaying up to {limit:,} messages of {dlq.url} through the handlers of {queue.url}")
    verdicts: dict[Verdict, int] = dict.fromkeys(Verdict, 0)
    seen: set[str] = set()
    kept: dict[str, dict[str, Any]] = {}  # by message id, with its latest receipt handle
    failed_groups: set[str] = set()
    try:
        while len(seen) < limit:
            batch = client.receive_message(
                QueueUrl=dlq.url,
                MaxNumberOfMessages=min(10, limit - len(seen)),
                VisibilityTimeout=hold,
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            new = [m for m in batch if m["MessageId"] not in seen]
            kept.update((m["MessageId"], m) for m in batch if m["MessageId"] in seen)
            if not new:
                break
            done = []
            for raw in new:
                seen.add(raw["MessageId"])
                message = Message.from_boto3(raw)
                if message.group_id in failed_groups:  # FIFO: keep the group's order
                    kept[message.message_id] = raw
                    continue
                outcome = queue.process(message)
                verdicts[outcome.verdict] += 1
                if outcome.delete:
                    done.append(BatchEntry(message.message_id, message.receipt_handle))
                else:
                    kept[message.message_id] = raw
                    if message.group_id is not None:
                        failed_groups.add(message.group_id)
            undeleted = delete_batch(client, dlq.url, done)
            if undeleted:
                raise CommandFailed(
                    f"SQS refused to delete {len(undeleted)} replayed messages "
                    f"({undeleted[0].code}); they stay in the dead-letter queue"
                )
    finally:
        _release(client, dlq.url, list(kept.values()))
    deleted = len(seen) - len(kept)
    print(
        f"replayed {sum(verdicts.values()):,}: {verdicts[Verdict.SUCCEEDED]:,} succeeded, "
        f"{verdicts[Verdict.NO_RETRY]:,} NoRetry, {verdicts[Verdict.RETRIED]:,} failed, "
        f"{verdicts[Verdict.UNPROCESSABLE]:,} unprocessable; {deleted:,} deleted, "
        f"{len(seen) - deleted:,} left in the dead-letter queue"
    )
    return 0 if deleted == len(seen) else 1
