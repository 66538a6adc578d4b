"""``sqsx dlq redrive`` (SQS's own StartMessageMoveTask, followed with ListMessageMoveTasks
until done, or cancelled) and ``sqsx dlq replay`` (the module's handlers, in this process)."""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from sqsx.cli.deadletter import DeadLetterQueue, receive, release
from sqsx.cli.target import CommandFailed
from sqsx.dispatch import Verdict
from sqsx.message import Message
from sqsx.queue import BaseQueue
from sqsx.sqs import BatchEntry, delete_batch, error_code

__all__ = ["run_redrive", "run_replay"]

_DONE = frozenset({"COMPLETED", "CANCELLED", "FAILED"})


def run_redrive(
    client: Any, dlq: DeadLetterQueue, *, rate: int | None, cancel: bool, wait: bool
) -> int:
    """Start a move task from the DLQ (``rate`` messages per second, SQS's default when
    ``None``) and follow it until it ends (unless not ``wait``), or cancel the running one.

    Raises:
        CommandFailed: the server refused the task, nothing is running to cancel, or the
            task ended FAILED or CANCELLED.
    """
    if cancel:
        running = [t for t in _move_tasks(client, dlq) if t.get("Status") == "RUNNING"]
        if not running:
            raise CommandFailed(f"no redrive is running from {dlq.url}")
        client.cancel_message_move_task(TaskHandle=running[0]["TaskHandle"])
        moved = running[0].get("ApproximateNumberOfMessagesMoved", 0)
        print(f"cancelling the redrive from {dlq.url} ({moved:,} messages moved so far)")
        return 0
    options = {}
    if rate is not None:
        options["MaxNumberOfMessagesPerSecond"] = rate
    # Without a DestinationArn each message goes back to the queue it came from, which is
    # right for a DLQ shared by several queues (StartMessageMoveTask, SQS API reference).
    try:
        client.start_message_move_task(SourceArn=dlq.arn, **options)
    except ClientError as err:
        raise CommandFailed(_move_refused(err)) from err
    print(f"redrive started: {dlq.url} -> the queue each message came from ({dlq.source_url})")
    if not wait:
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
    unlisted = 0
    while True:
        task = next(iter(_move_tasks(client, dlq)), {})
        unlisted = 0 if task else unlisted + 1
        if unlisted > 30:  # about 30 s without the task in ListMessageMoveTasks
            raise CommandFailed(f"the redrive from {dlq.url} is not listed by SQS; see the console")
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


def run_replay(queue: BaseQueue, dlq: DeadLetterQueue, limit: int, hold: int) -> int:
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
            batch = receive(client, dlq.url, limit - len(seen), hold)
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
        release(client, dlq.url, list(kept.values()))
    deleted = len(seen) - len(kept)
    print(
        f"replayed {sum(verdicts.values()):,}: {verdicts[Verdict.SUCCEEDED]:,} succeeded, "
        f"{verdicts[Verdict.NO_RETRY]:,} NoRetry, {verdicts[Verdict.RETRIED]:,} failed, "
        f"{verdicts[Verdict.UNPROCESSABLE]:,} unprocessable; {deleted:,} deleted, "
        f"{len(seen) - deleted:,} left in the dead-letter queue"
    )
    if deleted < len(seen):
        print(
            "the messages left are visible in the dead-letter queue again now (a handler's "
            "'retrying in N s' log line does not apply to a replay)"
        )
    return 0 if deleted == len(seen) else 1
