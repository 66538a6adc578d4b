"""Reading a dead-letter queue: where it is (the source's ``RedrivePolicy``), and ``sqsx dlq
ls`` / ``peek``, which receive messages to read them and make them visible again at once
(visibility 0). Each such receive counts toward a message's receive count."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqsx.cli.target import CommandFailed
from sqsx.codec import message_size
from sqsx.sqs import BatchEntry, change_visibility_batch, read_depth

__all__ = [
    "DeadLetterQueue",
    "find_dead_letter_queue",
    "receive",
    "release",
    "run_ls",
    "run_peek",
]

#: Message attributes where a producer recorded why a message failed (Lambda's
#: asynchronous-invocation DLQs carry ErrorCode/ErrorMessage); SQS itself keeps none.
_ERROR_ATTRIBUTES = ("ErrorMessage", "ErrorCode", "ERROR_MESSAGE", "ERROR_CODE")


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


def run_ls(client: Any, dlq: DeadLetterQueue, as_json: bool) -> int:
    """``sqsx dlq ls``: the DLQ, its depth, and the oldest sent time among up to ten
    messages sampled (received for 5 s, then made visible again)."""
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
    print(f"dead-letter queue  {dlq.url} (after {_receives(dlq.max_receive_count)})")
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


def run_peek(client: Any, dlq: DeadLetterQueue, count: int, body: bool, as_json: bool) -> int:
    """``sqsx dlq peek``: up to ``count`` messages, described; bodies only with ``body``.
    Nothing is deleted."""
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


def receive(client: Any, url: str, count: int, hold: int) -> list[dict[str, Any]]:
    """One ReceiveMessage of up to ``count`` (at most 10) messages with every attribute,
    hidden for ``hold`` seconds; waits up to 1 s for them."""
    response = client.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=min(10, count),
        VisibilityTimeout=hold,
        WaitTimeSeconds=1,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return list(response.get("Messages", []))


def _receive_and_release(client: Any, url: str, count: int, hold: int) -> list[dict[str, Any]]:
    """Up to ``count`` messages, hidden for ``hold`` s while they are read, then made
    visible again (visibility 0). Each receive counts toward their receive count."""
    seen: dict[str, dict[str, Any]] = {}
    try:
        for _ in range(count // 10 + 3):  # bounded: empty or repeated receives end it
            batch = receive(client, url, count - len(seen), hold)
            new = [m for m in batch if m["MessageId"] not in seen]
            seen.update((m["MessageId"], m) for m in new)
            if not new or len(seen) >= count:
                break
    finally:
        release(client, url, list(seen.values()))
    return list(seen.values())


def release(client: Any, url: str, messages: Sequence[dict[str, Any]]) -> None:
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


def _receives(count: int) -> str:
    return f"{count} receive{'' if count == 1 else 's'}"


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
