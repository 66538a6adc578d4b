"""Per-task time limits in both runtimes, against moto: interrupted, abandoned and replaced,
capped by Lambda's deadline; the message always gets its backoff."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Consumer, lambda_event, queue_counts, wait_until

from sqsx import ConfigurationError, Queue, RawQueue, Verdict
from sqsx.exceptions import TimeLimitExceeded
from sqsx_lambda import LambdaHandler
from sqsx_lambda.invoke import LocalContext


def receive_count(context: dict[str, Any]) -> int:
    return int(context["sqs_message"]["Attributes"]["ApproximateReceiveCount"])


def test_a_blocked_handler_is_abandoned_and_its_thread_replaced(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given a task that blocks in a C call on its first delivery, with a 1 s limit, and
    # quick tasks of which two must run at once to finish
    url = make_queue(VisibilityTimeout=30)
    queue = Queue(url, sqs_client, min_backoff_seconds=1, max_backoff_seconds=1)
    pair = threading.Barrier(2, timeout=15)
    done: list[str] = []

    def hang(context: dict[str, Any]) -> None:
        if receive_count(context) == 1:
            threading.Event().wait(20)  # not interruptible: a lock wait
        done.append("hang")

    def pairs(context: dict[str, Any], n: int) -> None:
        pair.wait()
        done.append(f"pair-{n}")

    queue.add_task_handler("hang", hang, time_limit=1)
    queue.add_task_handler("pairs", pairs)
    queue.add_task("hang")

    # When a worker with two threads runs it, then the pairs arrive
    consumer = Consumer(queue, max_threads=2, max_messages=1)
    try:
        assert wait_until(lambda: queue.stats().timed_out == 1, timeout=10)
        for n in range(4):
            queue.add_task("pairs", n=n)
        # Then both threads work (the stuck one was replaced), and the hung task comes
        # back after its 1 s backoff and succeeds on its second delivery
        assert wait_until(lambda: len(done) == 5, timeout=20), done
        assert wait_until(lambda: queue_counts(sqs_client, url) == (0, 0, 0), timeout=10)
    finally:
        consumer.stop()
    snapshot = queue.stats()
    assert (snapshot.timed_out, snapshot.succeeded) == (1, 5)


def test_python_code_past_its_limit_is_interrupted_and_backed_off(
    sqs_client: Any, make_queue: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    url = make_queue(VisibilityTimeout=30)
    queue = Queue(url, sqs_client, min_backoff_seconds=1, max_backoff_seconds=1, time_limit=0.5)
    interrupted: list[int] = []

    def spin(context: dict[str, Any]) -> None:
        if receive_count(context) > 1:
            return
        try:
            while True:
                sum(range(100))
        except TimeLimitExceeded:
            interrupted.append(receive_count(context))
            raise

    queue.add_task_handler("spin", spin)  # the queue's 0.5 s applies
    queue.add_task("spin")
    consumer = Consumer(queue, max_threads=1)
    try:
        assert wait_until(lambda: queue.stats().succeeded == 1, timeout=15)
    finally:
        consumer.stop()
    assert interrupted == [1]
    assert queue.stats().timed_out == 1
    lines = [r.getMessage() for r in caplog.records if "time limit" in r.getMessage()]
    assert any("ran past its time limit of 0.5s, retrying in 1s" in line for line in lines)
    assert not any("abandoned" in line for line in lines)  # it stopped when asked


def test_a_handler_that_swallows_the_stop_is_abandoned(sqs_client: Any, queue_url: str) -> None:
    queue = Queue(queue_url, sqs_client, min_backoff_seconds=60)
    outcomes: list[Any] = []

    def stubborn(context: dict[str, Any]) -> None:
        started = time.monotonic()
        while time.monotonic() - started < 6:
            try:
                time.sleep(0.05)
            except TimeLimitExceeded:
                pass  # carries on regardless

    queue.add_task_handler("stubborn", stubborn, time_limit=0.3)
    message = {
        "MessageId": "m",
        "ReceiptHandle": "r",
        "Body": "eyJrd2FyZ3MiOiB7fX0=",
        "MessageAttributes": {"TaskName": {"DataType": "String", "StringValue": "stubborn"}},
    }
    abandoned = threading.Event()

    def on_abandon(msg: Any, outcome: Any) -> None:
        outcomes.append(outcome)
        abandoned.set()

    from sqsx import Message

    started = time.monotonic()
    late: list[Any] = []
    worker = threading.Thread(
        target=lambda: late.append(
            queue.dispatcher.process(Message.from_boto3(message), on_abandon=on_abandon)
        )
    )
    worker.start()
    assert abandoned.wait(10)
    assert time.monotonic() - started < 4  # 0.3 s limit + 2 s grace, not the 6 s it wanted
    assert outcomes[0].verdict is Verdict.TIMED_OUT and outcomes[0].retry_after == 60
    worker.join(10)
    assert late[0].late and late[0].verdict is Verdict.TIMED_OUT  # ignored by the runtime


def test_an_async_handler_past_its_limit_is_cancelled() -> None:
    import boto3

    client = boto3.client("sqs", region_name="us-east-1")
    queue = RawQueue("http://127.0.0.1:1/0/q", lambda url, m: None, client, time_limit=0.3)
    cancelled = threading.Event()

    async def slow(queue_url: str, sqs_message: dict[str, Any]) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    queue.dispatcher.handler = slow  # type: ignore[attr-defined]
    started = time.monotonic()
    outcome = queue.process({"MessageId": "m", "ReceiptHandle": "r", "Body": "x"})
    assert outcome.verdict is Verdict.TIMED_OUT
    assert time.monotonic() - started < 2
    assert cancelled.wait(5)


def test_lambda_reports_a_record_past_its_limit_with_its_backoff_and_returns(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    url = make_queue(VisibilityTimeout=60)
    queue = Queue(url, sqs_client, min_backoff_seconds=1, max_backoff_seconds=1)
    ran: list[int] = []

    def task(context: dict[str, Any], n: int) -> None:
        if n == 0:
            threading.Event().wait(20)  # blocked: cannot be interrupted
        ran.append(n)

    queue.add_task_handler("task", task, time_limit=0.5)
    for n in range(4):
        queue.add_task("task", n=n)
    event = lambda_event(sqs_client, url, 4)
    hung = next(r["messageId"] for r in event["Records"] if '"n": 0' in _kwargs(r))
    handler = LambdaHandler(queue, max_threads=2)
    try:
        started = time.monotonic()
        response = handler(event, LocalContext())
        took = time.monotonic() - started
    finally:
        handler.close()
    assert response["batchItemFailures"] == [{"itemIdentifier": hung}]
    assert sorted(ran) == [1, 2, 3]
    assert took < 5  # 0.5 s limit + 2 s grace; not the 20 s the handler wanted
    for record in event["Records"]:
        if record["messageId"] != hung:
            sqs_client.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
    # its backoff (1 s) was set, not the queue's 60 s visibility timeout
    assert wait_until(lambda: queue_counts(sqs_client, url)[0] == 1, timeout=6)


def test_lambda_caps_a_time_limit_by_the_invocation_deadline() -> None:
    import boto3

    client = boto3.client("sqs", region_name="us-east-1")
    queue = Queue("http://127.0.0.1:1/0/q", client, time_limit=600)

    def spin(context: dict[str, Any]) -> None:
        while True:
            sum(range(100))

    queue.add_task_handler("spin", spin)
    from sqsx import Message

    message = Message.from_boto3(
        {
            "MessageId": "m",
            "ReceiptHandle": "r",
            "Body": "eyJrd2FyZ3MiOiB7fX0=",
            "MessageAttributes": {"TaskName": {"DataType": "String", "StringValue": "spin"}},
        }
    )
    started = time.monotonic()
    outcome = queue.dispatcher.process(message, limit_cap=lambda: 0.4)
    assert outcome.verdict is Verdict.TIMED_OUT and "0.4s" in outcome.reason
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("bad", [0, -1, 43_201, "10", True, float("nan")])
def test_bad_time_limits_are_refused_at_registration(bad: Any) -> None:
    import boto3

    client = boto3.client("sqs", region_name="us-east-1")
    with pytest.raises(ConfigurationError, match="time_limit"):
        Queue("http://127.0.0.1:1/0/q", client, time_limit=bad)
    queue = Queue("http://127.0.0.1:1/0/q", client)
    with pytest.raises(ConfigurationError, match="time_limit"):
        queue.add_task_handler("t", lambda context: None, time_limit=bad)
    assert queue.task_names == []


def _kwargs(record: dict[str, Any]) -> str:
    import base64

    return base64.b64decode(record["body"]).decode()
