"""S3Payloads in both runtimes: the polling worker and LambdaHandler, against moto's SQS and
S3 over HTTP on 127.0.0.1 (send paths, clean-up policy, faults, Extended Client producers
and consumers)."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import CallCounter, Consumer, Stack, lambda_event, queue_counts, wait_until
from test_payloads import fail_s3

from sqsx import Queue, RawQueue, TaskMessage
from sqsx.codec import decode_task, encode_kwargs, task_attributes
from sqsx.exceptions import Retry
from sqsx.payloads import S3Payloads
from sqsx.sending import RawMessage
from sqsx_lambda import LambdaHandler

pytestmark = pytest.mark.timeout(90)

MIB = 1024 * 1024


class Seen:
    """A task handler that records what it got (thread-safe) and can fail on demand."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[dict[str, Any]] = []
        self._fail = fail_first
        self._lock = threading.Lock()

    def __call__(self, context: dict[str, Any], blob: str, n: int = 0) -> None:
        with self._lock:
            self.calls.append({"n": n, "len": len(blob), "message": context["sqs_message"]})
            if len(self.calls) <= self._fail:
                raise Retry(min_backoff_seconds=0, max_backoff_seconds=0)


def task_queue(stack: Stack, seen: Callable[..., None], **settings: Any) -> Queue:
    """A task queue offloading to the stack's bucket, running ``seen`` for task ``t``."""
    queue = Queue(
        url=stack.url,
        sqs_client=stack.sqs,
        min_backoff_seconds=0,
        max_backoff_seconds=0,
        payloads=S3Payloads(stack.s3, stack.bucket, key_prefix="t/"),
        **settings,
    )
    queue.add_task_handler("t", seen)
    return queue


def consume_until(queue: Any, stack: Stack, done: Callable[[], bool], **options: Any) -> None:
    """Run the worker until ``done()``, the queue is empty and the bucket too."""
    consumer = Consumer(queue, max_messages=10, **options)
    try:
        assert wait_until(done, timeout=30)
        assert wait_until(lambda: queue_counts(stack.sqs, stack.url) == (0, 0, 0), timeout=15)
        assert wait_until(lambda: stack.keys() == [], timeout=15)
    finally:
        consumer.stop()


# -- the worker ------------------------------------------------------------------------------


def test_worker_runs_offloaded_tasks_sent_in_one_batch(stack: Stack) -> None:
    # Given three 2 MiB tasks and one small one, sent with send_tasks
    seen = Seen()
    queue = task_queue(stack, seen)
    counter = CallCounter(stack.sqs)
    tasks = [TaskMessage("t", {"blob": "x" * (2 * MIB), "n": n}) for n in range(3)]
    results = queue.send_tasks([*tasks, TaskMessage("t", {"blob": "small", "n": 3})])
    # Then the batch counted pointers: one SendMessageBatch, three objects
    assert all(r.ok for r in results)
    assert counter.counts["SendMessageBatch"] == 1
    assert len(stack.keys()) == 3
    # When the worker consumes them (and then the objects are gone)
    consume_until(queue, stack, lambda: len(seen.calls) == 4, max_threads=4)
    # Then each handler saw its whole payload, and only offloaded ones carry S3Payload
    by_n = {call["n"]: call for call in seen.calls}
    assert [by_n[n]["len"] for n in range(4)] == [2 * MIB] * 3 + [5]
    assert all("S3Payload" in by_n[n]["message"] for n in range(3))
    assert "S3Payload" not in by_n[3]["message"]
    for call in seen.calls:  # MD5OfBody is the payload's, as if it had come inline
        message = call["message"]
        assert message["MD5OfBody"] == hashlib.md5(message["Body"].encode()).hexdigest()


def test_a_retried_message_keeps_its_object_until_it_succeeds(stack: Stack) -> None:
    seen = Seen(fail_first=1)
    queue = task_queue(stack, seen)
    deleted_while_failing: list[bool] = []
    stack.s3.meta.events.register(
        "before-call.s3.DeleteObject", lambda **_: deleted_while_failing.append(len(seen.calls) < 2)
    )
    queue.add_task("t", blob="y" * (MIB + 1))
    consume_until(queue, stack, lambda: len(seen.calls) == 2, max_threads=2)
    assert seen.calls[1]["len"] == MIB + 1  # the retry read the same object again
    assert deleted_while_failing == [False]  # one DeleteObject, after the success


@pytest.mark.parametrize("runtime", ["worker", "lambda"])
def test_raw_queue_handler_gets_the_payload_and_the_pointer(stack: Stack, runtime: str) -> None:
    got: list[dict[str, Any]] = []
    queue = RawQueue(
        stack.url,
        lambda url, message: got.append(message),
        stack.sqs,
        payloads=S3Payloads(stack.s3, stack.bucket, threshold_bytes=1000),
    )
    queue.add_message("z" * 1001, {"Kind": {"DataType": "String", "StringValue": "k"}})
    queue.send_messages([RawMessage("short")])
    if runtime == "worker":
        consume_until(queue, stack, lambda: len(got) == 2)
    else:
        response = LambdaHandler(queue)(lambda_event(stack.sqs, stack.url, 2), None)
        assert response["batchItemFailures"] == [] and stack.keys() == []
    big = next(m for m in got if m["Body"] != "short")
    assert big["Body"] == "z" * 1001
    assert big["MessageAttributes"] == {"Kind": {"DataType": "String", "StringValue": "k"}}
    assert big["S3Payload"]["Pointer"].startswith('["software.amazon.payloadoffloading')
    assert "S3Payload" not in next(m for m in got if m["Body"] == "short")


def test_worker_retries_a_throttled_read(stack: Stack) -> None:
    # Given S3 answering the first GetObject with SlowDown (503)
    seen = Seen()
    queue = task_queue(stack, seen)
    queue.add_task("t", blob="w" * (MIB + 1))
    gets: list[int] = []

    def throttle_once(**_: Any) -> None:
        gets.append(1)
        if len(gets) == 1:
            error = {"Code": "SlowDown", "Message": "injected"}
            raise ClientError(
                {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject"
            )

    stack.s3.meta.events.register("before-call.s3.GetObject", throttle_once)
    # Then the message comes back after its backoff (0 s here) and succeeds
    consume_until(queue, stack, lambda: len(seen.calls) == 1)
    stats = queue.stats()
    assert (stats.retried, stats.unprocessable, stats.succeeded) == (1, 0, 1)
    assert len(gets) == 2 and seen.calls[0]["len"] == MIB + 1


def test_a_missing_object_is_poison_under_the_queue_policy(stack: Stack) -> None:
    # Given an offloaded task whose object was removed behind our back
    seen = Seen()
    queue = task_queue(stack, seen, poison_policy="delete")
    queue.add_task("t", blob="v" * (MIB + 1))
    (key,) = stack.keys()
    stack.s3.delete_object(Bucket=stack.bucket, Key=key)
    # When the worker meets it, with poison_policy="delete"
    consume_until(queue, stack, lambda: queue.stats().unprocessable == 1)
    # Then it was deleted as unprocessable, the handler never ran
    assert seen.calls == []


def test_a_fifo_group_keeps_its_order_through_s3(
    stack: Stack, make_queue: Callable[..., str]
) -> None:
    # Given a FIFO group of three tasks, the middle one offloaded
    fifo = dataclasses.replace(stack, url=make_queue(fifo=True))
    seen = Seen()
    queue = task_queue(fifo, seen)
    blobs = ["a", "b" * (MIB + 1), "c"]
    queue.send_tasks(
        TaskMessage("t", {"blob": blob, "n": n}, group_id="g", deduplication_id=f"d{n}")
        for n, blob in enumerate(blobs)
    )
    assert len(stack.keys()) == 1
    # When the worker runs them on several threads
    consume_until(queue, fifo, lambda: len(seen.calls) == 3, max_threads=3)
    # Then they ran in the group's order, with the whole payload
    assert [(c["n"], c["len"]) for c in seen.calls] == [(0, 1), (1, MIB + 1), (2, 1)]


# -- Lambda ----------------------------------------------------------------------------------


def test_lambda_resolves_and_cleans_up_only_what_it_does_not_report(stack: Stack) -> None:
    # Given two offloaded tasks, one of which fails
    def handler(context: dict[str, Any], blob: str, n: int) -> None:
        assert len(blob) == 2 * MIB
        if n == 1:
            raise RuntimeError("boom")

    queue = task_queue(stack, handler)
    queue.send_tasks([TaskMessage("t", {"blob": "u" * (2 * MIB), "n": n}) for n in range(2)])
    event = lambda_event(stack.sqs, stack.url, 2)
    ids = {r["messageId"]: r for r in event["Records"]}
    # When LambdaHandler runs the event
    response = LambdaHandler(queue, max_threads=2)(event, None)
    # Then only the failed record is reported, and only the other one's object is gone
    (failed,) = [item["itemIdentifier"] for item in response["batchItemFailures"]]
    assert failed in ids
    left = stack.keys()
    assert len(left) == 1 and left[0] in ids[failed]["body"]


def test_lambda_reports_a_record_whose_object_is_denied(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    queue = task_queue(stack, Seen())
    queue.add_task("t", blob="s" * (MIB + 1))
    event = lambda_event(stack.sqs, stack.url, 1)
    fail_s3(stack.s3, "GetObject", "AccessDenied", 403)
    response = LambdaHandler(queue, max_threads=1)(event, None)
    assert [i["itemIdentifier"] for i in response["batchItemFailures"]] == [
        event["Records"][0]["messageId"]
    ]
    unprocessable = [r.getMessage() for r in caplog.records if r.name == "sqsx.dispatch"]
    assert len(unprocessable) == 1 and "PayloadUnavailableError" in unprocessable[0]
    assert f"bucket={stack.bucket}" in unprocessable[0]
    assert len(stack.keys()) == 1  # reported: nothing deleted


# -- AWS's Extended Client on the other end ----------------------------------------------------


@pytest.mark.parametrize("runtime", ["worker", "lambda"])
def test_both_runtimes_run_tasks_the_extended_client_sent(stack: Stack, runtime: str) -> None:
    # Given a 300 kB task sent through S3 by AWS's Python Extended Client
    stack.extended().send_message(
        QueueUrl=stack.url,
        MessageBody=encode_kwargs({"blob": "r" * 300_000, "n": 7}),
        MessageAttributes=task_attributes("t"),
    )
    seen = Seen()
    queue = task_queue(stack, seen)
    # When one of our runtimes takes it
    if runtime == "worker":
        consume_until(queue, stack, lambda: len(seen.calls) == 1)
    else:
        response = LambdaHandler(queue)(lambda_event(stack.sqs, stack.url, 1), None)
        assert response["batchItemFailures"] == []
    # Then the handler got the task, and its object is gone
    assert (seen.calls[0]["n"], seen.calls[0]["len"]) == (7, 300_000)
    assert stack.keys() == []


def test_the_extended_client_reads_tasks_our_queue_batched(stack: Stack) -> None:
    # Given two 1.5 MiB tasks sent by our Queue with send_tasks
    queue = task_queue(stack, Seen())
    results = queue.send_tasks(
        [TaskMessage("t", {"blob": "q" * (3 * MIB // 2), "n": n}) for n in range(2)]
    )
    assert all(r.ok for r in results)
    # When AWS's Python Extended Client receives them
    consumer = stack.extended(delete_payload_from_s3=True)
    received: list[dict[str, Any]] = []
    for _ in range(10):  # bounded
        received += consumer.receive_message(
            QueueUrl=stack.url, MessageAttributeNames=["All"], MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
        ).get("Messages", [])  # fmt: skip
        if len(received) >= 2:
            break
    # Then it sees our task bodies and TaskName attributes, and its deletes remove our objects
    tasks = sorted(
        (decode_task(m["Body"], m["MessageAttributes"]) for m in received),
        key=lambda t: t.kwargs["n"],
    )
    assert [(t.name, t.kwargs["n"], len(t.kwargs["blob"])) for t in tasks] == [
        ("t", 0, 3 * MIB // 2),
        ("t", 1, 3 * MIB // 2),
    ]
    for message in received:
        consumer.delete_message(QueueUrl=stack.url, ReceiptHandle=message["ReceiptHandle"])
    assert stack.keys() == []
