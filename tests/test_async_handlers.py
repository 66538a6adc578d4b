"""``async def`` handlers (and handlers returning awaitables) run to completion in both
runtimes, with the same fates as sync handlers; nothing is counted as a success unrun."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Generator
from typing import Any

from conftest import Consumer, lambda_event, queue_counts, wait_until

from sqsx import NoRetry, Queue, RawQueue, Retry, Verdict
from sqsx_lambda import LambdaHandler
from sqsx_lambda.invoke import LocalContext


def test_async_task_handlers_run_concurrently_in_the_worker(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given 20 tasks whose async handler awaits; four of them must overlap to proceed
    url = make_queue()
    queue = Queue(url, sqs_client)
    done: list[int] = []
    overlap = threading.Barrier(4, timeout=10)
    loops: set[int] = set()

    async def notify(context: dict[str, Any], n: int) -> None:
        loops.add(id(asyncio.get_running_loop()))
        await asyncio.sleep(0.01)
        if n < 4:
            await asyncio.get_running_loop().run_in_executor(None, overlap.wait)
        done.append(n)

    queue.add_task_handler("notify", notify)
    for n in range(20):
        queue.add_task("notify", n=n)

    # When a worker with four threads drains the queue
    consumer = Consumer(queue, max_threads=4, max_messages=10)
    try:
        assert wait_until(lambda: queue_counts(sqs_client, url) == (0, 0, 0), timeout=20)
    finally:
        consumer.stop()

    # Then every body ran to completion, on one event loop, and stats count successes
    assert sorted(done) == list(range(20))
    assert len(loops) == 1
    assert queue.stats().succeeded == 20


def test_async_retry_noretry_and_errors_keep_their_fates() -> None:
    import boto3

    client = boto3.client("sqs", region_name="us-east-1")
    queue = Queue("http://127.0.0.1:1/000000000000/q", client, min_backoff_seconds=7)

    async def retry(context: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        raise Retry(min_backoff_seconds=3, max_backoff_seconds=3)

    async def no_retry(context: dict[str, Any]) -> None:
        raise NoRetry()

    async def broken(context: dict[str, Any]) -> None:
        raise KeyError("x")

    class Later:
        """An awaitable that is not a coroutine."""

        def __init__(self) -> None:
            self.awaited = False

        def __await__(self) -> Generator[Any, None, None]:
            yield from asyncio.sleep(0).__await__()
            self.awaited = True

    later = Later()
    for name, fn in {"retry": retry, "no_retry": no_retry, "broken": broken}.items():
        queue.add_task_handler(name, fn)
    queue.add_task_handler("later", lambda context: later)

    def outcome(task: str) -> Any:
        body = "eyJrd2FyZ3MiOiB7fX0="  # {"kwargs": {}}
        attributes = {"TaskName": {"DataType": "String", "StringValue": task}}
        return queue.process(
            {"MessageId": task, "ReceiptHandle": "r", "Body": body, "MessageAttributes": attributes}
        )

    assert (outcome("retry").verdict, outcome("retry").retry_after) == (Verdict.RETRIED, 3)
    assert outcome("no_retry").verdict is Verdict.NO_RETRY
    assert (outcome("broken").verdict, outcome("broken").retry_after) == (Verdict.RETRIED, 7)
    assert outcome("later").verdict is Verdict.SUCCEEDED and later.awaited


def test_async_handlers_in_lambda_share_one_loop_across_invocations(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    url = make_queue(VisibilityTimeout=60)
    loops: list[int] = []
    bodies: list[str] = []

    async def handle(queue_url: str, sqs_message: dict[str, Any]) -> None:
        await asyncio.sleep(0.01)
        loops.append(id(asyncio.get_running_loop()))
        if sqs_message["Body"] == "bad":
            raise ValueError("bad body")
        bodies.append(sqs_message["Body"])

    queue = RawQueue(url, handle, sqs_client, min_backoff_seconds=1)
    for threads in (1, 8):
        handler = LambdaHandler(queue, max_threads=threads)
        try:
            for invocation in range(2):
                for body in (f"ok-{threads}-{invocation}", "bad"):
                    queue.add_message(body)
                event = lambda_event(sqs_client, url, 2)
                bad = [r["messageId"] for r in event["Records"] if r["body"] == "bad"]
                response = handler(event, LocalContext())
                assert response["batchItemFailures"] == [{"itemIdentifier": bad[0]}]
                for record in event["Records"]:  # as Lambda would, plus the retried one
                    sqs_client.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
        finally:
            handler.close()
    assert sorted(bodies) == ["ok-1-0", "ok-1-1", "ok-8-0", "ok-8-1"]
    assert len(set(loops)) == 1  # the queue's loop, reused by every warm invocation
