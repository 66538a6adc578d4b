"""Lambda: an event of every poison kind among valid records, and a record that overruns."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import lambda_event, queue_counts, wait_until
from faultkit import Ledger, send_tasks, work_tasks
from poison import ODDITIES, POISON, REFUSED_BY_SQS, Crafted

from sqsx import Queue
from sqsx.dispatch import PoisonPolicy
from sqsx_lambda import LambdaHandler
from sqsx_lambda.invoke import LocalContext
from sqsx_lambda.records import to_lambda

pytestmark = pytest.mark.fault

VALID = 10


def _break_record(record: dict[str, Any], how: str) -> None:
    """Damage a record the way only a hand-written event could (SQS never sends these)."""
    if how == "body-not-a-string":
        record["body"] = None
    elif how == "attributes-not-an-object":
        record["messageAttributes"] = "TaskName=work"
    elif how == "attribute-without-data-type":
        record["messageAttributes"] = {"TaskName": {"stringValue": "work"}}
    elif how == "binary-value-not-base64":
        record["messageAttributes"] = {
            "TaskName": {"stringValue": "work", "dataType": "String"},
            "Blob": {"binaryValue": "%%% not base64 %%%", "dataType": "Binary"},
        }


def _carry(record: dict[str, Any], crafted: Crafted) -> None:
    """Make a received record carry ``crafted`` (a kind SQS refuses to send), as a
    hand-written event could: its body and attributes, in Lambda's shape."""
    as_received = {
        "MessageId": record["messageId"],
        "ReceiptHandle": record["receiptHandle"],
        "Body": crafted.body,
        "MessageAttributes": crafted.attributes or {},
    }
    rewritten = to_lambda(as_received, event_source_arn=record["eventSourceARN"])
    record["body"] = rewritten["body"]
    record["messageAttributes"] = rewritten["messageAttributes"]


BROKEN_RECORDS = (
    "body-not-a-string",
    "attributes-not-an-object",
    "attribute-without-data-type",
    "binary-value-not-base64",
)


@pytest.fixture
def lambda_handlers() -> Iterator[Callable[..., LambdaHandler]]:
    made: list[LambdaHandler] = []

    def make(queue: Queue, **options: Any) -> LambdaHandler:
        handler = LambdaHandler(queue, **options)
        made.append(handler)
        return handler

    yield make
    for handler in made:
        handler.close()


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param("retry", id="retry"),
        pytest.param("delete", id="delete"),
    ],
)
def test_an_event_of_every_poison_kind_reports_exactly_what_must_be_retried(
    policy: PoisonPolicy,
    sqs_client: Any,
    make_queue: Callable[..., str],
    lambda_handlers: Callable[..., LambdaHandler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given one event holding 26 kinds of poison, 4 hand-damaged records, 5 unusual but
    # valid tasks and 10 valid ones, received from a queue with a 60 s visibility timeout;
    # the 3 kinds SQS refuses to send are written into received records by hand
    url = make_queue("lambda-poison", VisibilityTimeout=60)
    kinds: list[Crafted] = [*POISON, *ODDITIES]
    for crafted in kinds:
        if not crafted.sqs_refuses:
            crafted.send(sqs_client, url)
    placeholders = len(BROKEN_RECORDS) + len(REFUSED_BY_SQS)
    send_tasks(sqs_client, url, work_tasks(VALID + placeholders, prefix="v"))
    total = len(kinds) + VALID + len(BROKEN_RECORDS)
    event = lambda_event(sqs_client, url, total)
    by_body = {c.body: c for c in kinds}
    hand_written = [r for r in event["Records"] if r["body"] not in by_body][:placeholders]
    damaged, carriers = hand_written[: len(BROKEN_RECORDS)], hand_written[len(BROKEN_RECORDS) :]
    rewritten_ids = {_task_id(r) for r in hand_written}
    for record, how in zip(damaged, BROKEN_RECORDS, strict=True):
        _break_record(record, how)
    for record, crafted in zip(carriers, REFUSED_BY_SQS, strict=True):
        _carry(record, crafted)
    broken = [r["messageId"] for r in damaged]
    poison_bodies = {c.body for c in POISON}
    poison = [r["messageId"] for r in event["Records"] if r["body"] in poison_bodies]

    queue = Queue(
        url=url,
        sqs_client=sqs_client,
        min_backoff_seconds=1,
        max_backoff_seconds=1,
        poison_policy=policy,
    )
    ledger = Ledger()

    def work(context: dict[str, Any], task_id: str, seconds: float = 0.0) -> None:
        ledger.record("finish", task_id, 1)

    queue.add_task_handler("work", work)
    caplog.set_level(logging.INFO, logger="sqsx")
    caplog.set_level(logging.INFO, logger="sqsx_lambda")

    # When the Lambda handler gets it
    response = lambda_handlers(queue, max_threads=10)(event, LocalContext())

    # Then it did not raise, and reports exactly the poison and damaged records (retry), or
    # none at all (delete), in event order
    must_retry = [m for m in (r["messageId"] for r in event["Records"]) if m in {*poison, *broken}]
    expected = must_retry if policy == "retry" else []
    assert response == {"batchItemFailures": [{"itemIdentifier": m} for m in expected]}

    # And every valid task ran, and no poison reached the handler
    valid_ids = {f"v{i:04d}" for i in range(VALID + placeholders)} - rewritten_ids
    assert ledger.tasks("finish") == valid_ids | {c.reason for c in ODDITIES}

    # And each poison or damaged record got one line with its id and reason
    level = logging.WARNING if policy == "retry" else logging.ERROR
    for message_id in must_retry:
        lines = [r for r in caplog.records if f"message_id={message_id}" in r.getMessage()]
        assert len(lines) == 1, [r.getMessage() for r in lines]
        assert lines[0].levelno == level
        assert "reason=" in lines[0].getMessage()

    # And under "retry" the reported records come back after their 1 s backoff, not after
    # the queue's 60 s (the handler set their visibility), while the others stay in flight
    if policy == "retry":
        assert wait_until(lambda: queue_counts(sqs_client, url)[0] == len(must_retry), 15)
        assert queue_counts(sqs_client, url)[1] == total - len(must_retry)
    print(
        f"\nFAULT-FIGURES lambda[{policy}] records={total} poison_kinds={len(POISON)} "
        f"damaged_records={len(broken)} reported={len(response['batchItemFailures'])} "
        f"valid_run={len(ledger.tasks('finish'))}"
    )


def _task_id(record: dict[str, Any]) -> str:
    import base64
    import json

    return str(json.loads(base64.urlsafe_b64decode(record["body"]))["kwargs"]["task_id"])


def test_a_record_overrunning_the_deadline_margin_is_reported(
    sqs_client: Any,
    make_queue: Callable[..., str],
    lambda_handlers: Callable[..., LambdaHandler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given an invocation with 3 s left and a 2 s margin, eight fast records and one that
    # would run for 30 s
    url = make_queue("lambda-slow", VisibilityTimeout=60)
    send_tasks(sqs_client, url, work_tasks(8, prefix="fast"))
    send_tasks(sqs_client, url, [{"task_id": "slow", "seconds": 30.0}])
    event = lambda_event(sqs_client, url, 9)
    slow = next(r["messageId"] for r in event["Records"] if _task_id(r) == "slow")
    release = threading.Event()
    ledger = Ledger()

    def work(context: dict[str, Any], task_id: str, seconds: float = 0.0) -> None:
        ledger.record("start", task_id, 1)
        release.wait(seconds)
        ledger.record("finish", task_id, 1)

    queue = Queue(url=url, sqs_client=sqs_client)
    queue.add_task_handler("work", work)
    caplog.set_level(logging.INFO, logger="sqsx_lambda")

    # When the handler runs the event
    try:
        response = lambda_handlers(queue, max_threads=10, deadline_margin_ms=2000)(
            event, LocalContext(timeout_ms=3000)
        )
        # Then it returned while the slow record still ran, reporting that record alone
        assert "slow" not in ledger.tasks("finish")
    finally:
        release.set()
    assert response == {"batchItemFailures": [{"itemIdentifier": slow}]}
    assert ledger.tasks("finish") >= {f"fast{i:04d}" for i in range(8)}
    assert any(slow in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records), (
        "the overrun was not logged with the record's id"
    )
    # And its visibility was left alone (it may still be running): it stays in flight
    assert queue_counts(sqs_client, url)[0] == 0
