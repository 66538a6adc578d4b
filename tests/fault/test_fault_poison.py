"""Poison messages mixed among valid tasks: each gets its log line and its documented fate."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Consumer, queue_counts, wait_until
from faultkit import Ledger, send_tasks, work_tasks
from poison import ODDITIES, POISON, REFUSED_BY_SQS
from servers import deviates_on

from sqsx import Queue
from sqsx.dispatch import PoisonPolicy

pytestmark = pytest.mark.fault

VALID = 30
MAX_RECEIVE_COUNT = 2


def _drain(client: Any, url: str, expected: int) -> dict[str, dict[str, Any]]:
    """Receive every message of ``url`` (hiding each for a minute), by message id."""
    found: dict[str, dict[str, Any]] = {}

    def more() -> bool:
        response = client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0
        )
        for message in response.get("Messages", []):
            found[message["MessageId"]] = message
        return len(found) >= expected

    wait_until(more, timeout=20, interval=0.1)
    return found


def _lines_about(records: list[logging.LogRecord], message_id: str) -> list[logging.LogRecord]:
    return [
        r
        for r in records
        if r.name.startswith("sqsx") and f"message_id={message_id}" in r.getMessage()
    ]


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param("retry", id="retry-until-dead-lettered"),
        pytest.param("delete", id="delete-at-once"),
    ],
)
def test_poison_messages_meet_their_fate_and_valid_tasks_all_run(
    policy: PoisonPolicy,
    sqs_client: Any,
    make_queue: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a queue that dead-letters a message on its third receive, holding 26 kinds of
    # poison mixed with 30 valid tasks and 5 unusual but valid ones
    dlq = make_queue("poison-dlq")
    dlq_arn = sqs_client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
    url = make_queue("poison", RedrivePolicy=json.dumps(redrive))
    valid = work_tasks(VALID, prefix="v")
    # (SQS refuses three kinds, as LocalStack does; moto accepts and delivers them)
    poison_ids: dict[str, Any] = {}
    for i, crafted in enumerate(POISON):
        message_id = crafted.send_unless_refused(sqs_client, url)
        if message_id is not None:
            poison_ids[message_id] = crafted
        send_tasks(sqs_client, url, valid[i : i + 1])
    send_tasks(sqs_client, url, valid[len(POISON) :])
    for crafted in ODDITIES:
        crafted.send(sqs_client, url)
    expected_ids = {t["task_id"] for t in valid} | {c.reason for c in ODDITIES}

    queue = Queue(
        url=url,
        sqs_client=sqs_client,
        min_backoff_seconds=1,
        max_backoff_seconds=2,
        poison_policy=policy,
    )
    ledger = Ledger()

    def work(context: dict[str, Any], task_id: str, seconds: float = 0.0) -> None:
        ledger.record("start", task_id, 1)
        ledger.record("finish", task_id, 1)

    queue.add_task_handler("work", work)
    caplog.set_level(logging.INFO, logger="sqsx")

    # When a worker consumes the queue until it is empty
    consumer = Consumer(queue, max_messages=10, max_threads=4)
    dead = len(poison_ids) if policy == "retry" else 0
    try:
        assert wait_until(
            lambda: (
                ledger.tasks("finish") >= expected_ids
                and queue_counts(sqs_client, url) == (0, 0, 0)
                and queue_counts(sqs_client, dlq)[0] == dead
            ),
            timeout=60,
            interval=0.2,
        ), (queue_counts(sqs_client, url), queue_counts(sqs_client, dlq))
        # Then the worker never died
        assert consumer.thread.is_alive()
    finally:
        consumer.stop()

    # And every valid task ran, and no poison reached the handler
    assert ledger.tasks("start") == expected_ids

    # And each poison message got one line per delivery, with its id and reason
    deliveries = MAX_RECEIVE_COUNT if policy == "retry" else 1
    level = logging.WARNING if policy == "retry" else logging.ERROR
    for message_id, crafted in poison_ids.items():
        lines = _lines_about(caplog.records, message_id)
        assert len(lines) == deliveries, (crafted.kind, [r.getMessage() for r in lines])
        for line in lines:
            assert line.levelno == level, crafted.kind
            assert "unprocessable message" in line.getMessage(), crafted.kind
            assert crafted.reason in line.getMessage(), (crafted.kind, line.getMessage())
    assert queue.stats().unprocessable == deliveries * len(poison_ids)

    # And its fate: dead-lettered after two deliveries, or deleted at once
    dead_letters = _drain(sqs_client, dlq, dead)
    assert set(dead_letters) == (set(poison_ids) if policy == "retry" else set())
    for message in dead_letters.values():
        assert message["Body"] == poison_ids[message["MessageId"]].body
    print(
        f"\nFAULT-FIGURES poison[{policy}] kinds={len(POISON)} "
        f"refused_by_server={len(POISON) - len(poison_ids)} valid={len(expected_ids)} "
        f"valid_run={len(ledger.tasks('finish'))} dead_lettered={len(dead_letters)} "
        f"poison_log_lines={deliveries * len(poison_ids)}"
    )


# SendMessage: "The minimum size is one character" and only #x9 | #xA | #xD | #x20 to #xD7FF |
# #xE000 to #xFFFD | #x10000 to #x10FFFF are allowed in a body
# (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html);
# "Name, type, value and the message body must not be empty or null"
# (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_MessageAttributeValue.html).
@deviates_on(
    "moto", reason="accepts an empty body, a body of control characters and an empty attribute"
)
def test_sqs_refuses_the_poison_it_documents_refusing(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # When each poison kind that SQS documents refusing is sent
    url = make_queue("refused-poison")
    refused = {c.kind: c.send_unless_refused(sqs_client, url) is None for c in REFUSED_BY_SQS}

    # Then each was refused as the sender's fault, and none is on the queue
    assert refused == {c.kind: True for c in REFUSED_BY_SQS}
    assert queue_counts(sqs_client, url) == (0, 0, 0)
