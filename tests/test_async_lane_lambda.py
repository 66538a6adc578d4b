"""The async lane in Lambda: ``LambdaHandler`` and the Powertools processor run records of
an ``async def`` handler as coroutines, holding no thread each, with the fates, time limits
and deadline guard of sync records. Against moto over HTTP; concurrency is measured inside
the handlers (``conftest.Overlap``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import FifoGroups, Overlap, lambda_event, queue_counts, wait_until

from sqsx import RawQueue, Retry
from sqsx_lambda.invoke import LocalContext

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def lambda_queue(sqs_client: Any, make_queue: Callable[..., str]) -> Iterator[tuple[str, Any]]:
    yield make_queue(VisibilityTimeout=120), sqs_client


def test_lambda_handler_runs_a_batch_of_coroutines_on_two_threads(
    lambda_queue: tuple[str, Any], handlers: Any
) -> None:
    # Given 40 records whose async handler sleeps 0.5 s; every fifth one fails
    url, client = lambda_queue
    overlap = Overlap()

    async def handle(queue_url: str, sqs_message: dict[str, Any]) -> None:
        await overlap.run(0.5)
        if sqs_message["Body"].endswith("0"):
            raise ValueError("ends in 0")

    queue = RawQueue(url, handle, client, min_backoff_seconds=100, max_backoff_seconds=100)
    for n in range(40):
        queue.add_message(f"m{n}" + ("0" if n % 5 == 0 else "1"))
    event = lambda_event(client, url, 40)
    handler = handlers(queue, max_threads=2, max_async=100)

    # When one invocation runs them
    started = time.monotonic()
    response = handler(event, LocalContext())
    elapsed = time.monotonic() - started

    # Then they overlapped far beyond two threads, and the failures are reported and
    # hidden for their 100 s backoff
    assert overlap.peak >= 20 and len(overlap.threads) == 1
    assert elapsed < 8  # 40 x 0.5 s would take 10 s on two threads
    failed = {r["messageId"] for r in event["Records"] if r["body"].endswith("0")}
    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == failed
    for record in event["Records"]:
        if record["messageId"] not in failed:
            client.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
    assert queue_counts(client, url) == (0, 8, 0)  # hidden: not back after the invocation


def test_lambda_time_limit_and_deadline_guard_cancel_coroutines(
    lambda_queue: tuple[str, Any], handlers: Any
) -> None:
    url, client = lambda_queue
    cancelled: list[str] = []

    async def handle(queue_url: str, sqs_message: dict[str, Any]) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(sqs_message["Body"])
            raise

    # A time limit: the record is reported with its backoff, well before the deadline
    queue = RawQueue(url, handle, client, min_backoff_seconds=100, time_limit=0.3)
    queue.add_message("limited")
    event = lambda_event(client, url, 1)
    started = time.monotonic()
    response = handlers(queue, max_threads=1)(event, LocalContext(timeout_ms=30_000))
    assert time.monotonic() - started < 5
    assert response["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert wait_until(lambda: cancelled == ["limited"], timeout=5)

    # No time limit: the deadline guard gives up on it and cancels the coroutine
    unlimited = RawQueue(url, handle, client, min_backoff_seconds=100)
    unlimited.add_message("deadline")
    event = lambda_event(client, url, 1)
    started = time.monotonic()
    response = handlers(unlimited, max_threads=1, deadline_margin_ms=1000)(
        event, LocalContext(timeout_ms=2_000)
    )
    assert time.monotonic() - started < 2.5
    assert response["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert wait_until(lambda: "deadline" in cancelled, timeout=5)


def test_lambda_fifo_groups_stay_in_order_with_coroutines(
    sqs_client: Any, make_queue: Callable[..., str], handlers: Any
) -> None:
    # Given two FIFO groups of five messages each, handled by a coroutine
    url = make_queue(fifo=True, VisibilityTimeout=60, ContentBasedDeduplication="true")
    groups = FifoGroups(sqs_client, url, 5)
    event = lambda_event(sqs_client, url, 10)

    # When one invocation runs them (a thread hands each coroutine over and moves on)
    response = handlers(groups.queue, max_threads=1)(event, LocalContext())

    # Then every record ran, each group in order, the two groups side by side
    assert response["batchItemFailures"] == []
    assert groups.order == {"a": [0, 1, 2, 3, 4], "b": [0, 1, 2, 3, 4]}
    assert groups.overlap.peak == 2


def test_powertools_processor_runs_async_record_handlers_concurrently(
    lambda_queue: tuple[str, Any],
) -> None:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from sqsx_lambda.powertools import SqsxBatchProcessor

    url, client = lambda_queue
    overlap = Overlap()

    async def record_handler(record: SQSRecord) -> str:
        await overlap.run(0.5)
        if record.body == "bad":
            raise Retry(min_backoff_seconds=90, max_backoff_seconds=90)
        return record.body.upper()

    sender = RawQueue(url, lambda queue_url, sqs_message: None, client)
    for n in range(29):
        sender.add_message(f"ok{n}")
    sender.add_message("bad")
    event = lambda_event(client, url, 30)
    processor = SqsxBatchProcessor(sqs_client=client, queue_url=url, max_threads=2)
    try:
        started = time.monotonic()
        with processor(event["Records"], record_handler, LocalContext()):
            entries = processor.process()
        elapsed = time.monotonic() - started
        response = processor.response()
    finally:
        processor.close()

    # Then the records overlapped far beyond two threads; results kept, the failure reported
    bad = [r["messageId"] for r in event["Records"] if r["body"] == "bad"]
    assert response == {"batchItemFailures": [{"itemIdentifier": bad[0]}]}
    assert overlap.peak >= 15 and len(overlap.threads) == 1
    assert elapsed < 6  # 30 x 0.5 s on two threads would take 7.5 s
    successes = sorted(entry[1] for entry in entries if entry[0] == "success")
    assert successes == sorted(f"OK{n}" for n in range(29))
