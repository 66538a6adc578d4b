"""SqsxBatchProcessor: Powertools' process_partial_response with sqsx's fan-out and backoff,
against moto over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from conftest import lambda_event, wait_until

from sqsx import Retry
from sqsx_lambda.invoke import LocalContext
from sqsx_lambda.powertools import RecordFailedError, SqsxBatchProcessor


@pytest.fixture
def processors() -> Iterator[Callable[..., SqsxBatchProcessor]]:
    made: list[SqsxBatchProcessor] = []

    def build(**options: Any) -> SqsxBatchProcessor:
        made.append(SqsxBatchProcessor(**options))
        return made[-1]

    yield build
    for processor in made:
        processor.close()


def test_process_partial_response_runs_records_at_once_and_backs_off_failures(
    sqs_client: Any, make_queue: Callable[..., str], processors: Callable[..., SqsxBatchProcessor]
) -> None:
    # Given four records whose handlers only proceed once all four run at once
    url = make_queue(VisibilityTimeout=60)
    for body in ("ok-1", "ok-2", "retry", "boom"):
        sqs_client.send_message(QueueUrl=url, MessageBody=body)
    event = lambda_event(sqs_client, url, 4)
    together = threading.Barrier(4, timeout=10)

    def record_handler(record: SQSRecord) -> str:
        together.wait()
        if record.body == "retry":
            raise Retry(min_backoff_seconds=1)
        if record.body == "boom":
            raise ValueError("boom")
        return record.body.upper()

    processor = processors(
        sqs_client=sqs_client, queue_url=url, max_threads=4, min_backoff_seconds=1
    )

    # When a Powertools-style function processes the batch
    response = process_partial_response(event, record_handler, processor, LocalContext())

    # Then the two failures are reported, and Powertools' bookkeeping agrees
    by_body = {record["body"]: record["messageId"] for record in event["Records"]}
    reported = [item["itemIdentifier"] for item in response["batchItemFailures"]]
    assert sorted(reported) == sorted([by_body["retry"], by_body["boom"]])
    assert sorted(record["body"] for record in processor.success_messages) == ["ok-1", "ok-2"]
    assert all(isinstance(error, RecordFailedError) for _, error, _ in processor.exceptions)

    # And on the server the failures come back after their 1 s backoff, not after 60 s
    for body in ("ok-1", "ok-2"):
        receipt = next(r["receiptHandle"] for r in event["Records"] if r["body"] == body)
        sqs_client.delete_message(QueueUrl=url, ReceiptHandle=receipt)
    back: set[str] = set()

    def both_back() -> bool:
        response = sqs_client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        back.update(m["MessageId"] for m in response.get("Messages", []))
        return len(back) == 2

    assert wait_until(both_back, timeout=15)
    assert back == set(reported)


def test_a_parser_model_and_the_lambda_context_reach_the_record_handler(
    sqs_client: Any, queue_url: str, processors: Callable[..., SqsxBatchProcessor]
) -> None:
    sqs_client.send_message(QueueUrl=queue_url, MessageBody="hello")
    event = lambda_event(sqs_client, queue_url, 1)
    context = LocalContext()
    seen: list[tuple[Any, Any]] = []

    def record_handler(record: SqsRecordModel, lambda_context: Any) -> str:
        seen.append((record, lambda_context))
        return "done"

    processor = processors(sqs_client=sqs_client, queue_url=queue_url, model=SqsRecordModel)
    with processor(event["Records"], record_handler, context):
        entries = processor.process()

    assert processor.response() == {"batchItemFailures": []}
    assert [entry[:2] for entry in entries] == [("success", "done")]
    assert isinstance(seen[0][0], SqsRecordModel) and seen[0][0].body == "hello"
    assert seen[0][1] is context


def test_when_every_record_fails_all_are_reported_without_raising(
    sqs_client: Any, queue_url: str, processors: Callable[..., SqsxBatchProcessor]
) -> None:
    for body in ("a", "b"):
        sqs_client.send_message(QueueUrl=queue_url, MessageBody=body)
    event = lambda_event(sqs_client, queue_url, 2)

    def record_handler(record: SQSRecord) -> None:
        raise RuntimeError("down")

    processor = processors(sqs_client=sqs_client, queue_url=queue_url)
    response = process_partial_response(event, record_handler, processor, LocalContext())
    assert len(response["batchItemFailures"]) == 2


def test_an_async_record_handler_runs_and_its_result_is_kept(
    sqs_client: Any, make_queue: Callable[..., str], processors: Callable[..., SqsxBatchProcessor]
) -> None:
    import asyncio

    url = make_queue(VisibilityTimeout=60)
    for body in ("a", "b"):
        sqs_client.send_message(QueueUrl=url, MessageBody=body)
    event = lambda_event(sqs_client, url, 2)

    async def record_handler(record: SQSRecord, lambda_context: Any) -> str:
        await asyncio.sleep(0.01)
        assert lambda_context is not None
        return record.body * 2

    processor = processors(sqs_client=sqs_client, queue_url=url, max_threads=2)
    with processor(event["Records"], record_handler, LocalContext()):
        entries = processor.process()
    assert processor.response() == {"batchItemFailures": []}
    assert sorted(entry[:2] for entry in entries) == [("success", "aa"), ("success", "bb")]
