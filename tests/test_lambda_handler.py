"""LambdaHandler against moto over HTTP: partial batch responses, backoff on the server,
fan-out, the deadline guard, FIFO groups, bad events and structured logs."""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import CallCounter, lambda_event, queue_counts, wait_until
from servers import LOCALSTACK_FIFO_GROUP_LOCK

from sqsx import NoRetry, Queue, RawQueue, Retry
from sqsx_lambda import EventError, LambdaHandler
from sqsx_lambda.invoke import LocalContext


def failures(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def ids_by_task(event: dict[str, Any]) -> dict[str, str]:
    """messageId of each record, keyed by its TaskName (one record per task in these tests)."""
    return {
        record["messageAttributes"]["TaskName"]["stringValue"]: record["messageId"]
        for record in event["Records"]
    }


def delete_as_lambda_would(
    client: Any, url: str, event: dict[str, Any], reported: list[str]
) -> None:
    """Lambda deletes every record of the batch that the response did not report."""
    entries = [
        {"Id": str(i), "ReceiptHandle": record["receiptHandle"]}
        for i, record in enumerate(event["Records"])
        if record["messageId"] not in reported
    ]
    for start in range(0, len(entries), 10):
        client.delete_message_batch(QueueUrl=url, Entries=entries[start : start + 10])


def kwargs_of(record: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = json.loads(base64.urlsafe_b64decode(record["body"]))["kwargs"]
    return kwargs


def receive(client: Any, url: str, wait: int = 0) -> list[dict[str, Any]]:
    return list(
        client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            WaitTimeSeconds=wait,
        ).get("Messages", [])
    )


def test_a_mixed_batch_reports_exactly_its_failures_and_backs_them_off_on_the_server(
    sqs_client: Any, make_queue: Callable[..., str], handlers: Callable[..., LambdaHandler]
) -> None:
    # Given a queue whose visibility timeout (60 s) is far above the tasks' backoff (3 s)
    url = make_queue(VisibilityTimeout=60)
    queue = Queue(url=url, sqs_client=sqs_client, min_backoff_seconds=3, max_backoff_seconds=8)
    queue.add_task_handler("ok", lambda context: None)

    def no_retry(context: dict[str, Any]) -> None:
        raise NoRetry()

    def retry(context: dict[str, Any]) -> None:
        raise Retry(min_backoff_seconds=3)

    def boom(context: dict[str, Any]) -> None:
        raise ValueError("downstream said no")

    queue.add_task_handler("no_retry", no_retry)
    queue.add_task_handler("retry", retry)
    queue.add_task_handler("boom", boom)
    for name in ("ok", "no_retry", "retry", "boom", "unknown"):
        queue.add_task(name)
    sqs_client.send_message(
        QueueUrl=url,
        MessageBody="not base64 json",
        MessageAttributes={"TaskName": {"DataType": "String", "StringValue": "undecodable"}},
    )
    event = lambda_event(sqs_client, url, 6)
    ids = ids_by_task(event)

    # When Lambda invokes the handler
    response = handlers(queue, max_threads=4)(event, LocalContext())

    # Then exactly the retried, failed, unknown and undecodable records are reported
    reported = failures(response)
    assert sorted(reported) == sorted(ids[n] for n in ("retry", "boom", "unknown", "undecodable"))
    delete_as_lambda_would(sqs_client, url, event, reported)
    # ... they are hidden for their backoff, not for the queue's 60 s ...
    assert queue_counts(sqs_client, url) == (0, 4, 0)
    assert receive(sqs_client, url) == []
    # ... and come back with their receive count raised by one; the others never come back
    back: dict[str, int] = {}

    def all_back() -> bool:
        for message in receive(sqs_client, url, wait=1):
            back[message["MessageId"]] = int(message["Attributes"]["ApproximateReceiveCount"])
        return len(back) == 4

    assert wait_until(all_back, timeout=15)
    assert back == {message_id: 2 for message_id in reported}


def test_the_handler_context_matches_the_polling_worker_s(
    sqs_client: Any, queue_url: str, handlers: Callable[..., LambdaHandler]
) -> None:
    # Given a task with a binary attribute, and a polling-style view of the same message
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    seen: list[dict[str, Any]] = []
    queue.add_task_handler("t", lambda context, n: seen.append(context))
    queue.send_task("t", {"n": 1}, attributes={"Sig": {"DataType": "Binary", "BinaryValue": b"\1"}})
    event = lambda_event(sqs_client, queue_url, 1)
    context = LocalContext()

    # When it runs in Lambda
    assert failures(handlers(queue, max_threads=1)(event, context)) == []

    # Then the handler saw boto3's shape, and the Lambda context next to it
    message = seen[0]["sqs_message"]
    assert set(message) == {
        "MessageId",
        "ReceiptHandle",
        "MD5OfBody",
        "Body",
        "Attributes",
        "MD5OfMessageAttributes",
        "MessageAttributes",
    }
    assert message["MessageAttributes"]["Sig"] == {"DataType": "Binary", "BinaryValue": b"\1"}
    assert seen[0]["lambda_context"] is context
    assert seen[0]["queue_url"] == queue_url and seen[0]["task_name"] == "t"


def test_visibility_changes_go_ten_to_a_call(
    sqs_client: Any,
    queue_url: str,
    call_counter: CallCounter,
    handlers: Callable[..., LambdaHandler],
) -> None:
    # Given 12 tasks that all fail
    queue = Queue(url=queue_url, sqs_client=sqs_client)

    def fail(context: dict[str, Any], n: int) -> None:
        raise RuntimeError("no")

    queue.add_task_handler("fail", fail)
    for n in range(12):
        queue.add_task("fail", n=n)
    event = lambda_event(sqs_client, queue_url, 12)
    call_counter.counts.clear()

    # When the batch runs
    response = handlers(queue, max_threads=4)(event, LocalContext())

    # Then all 12 are reported without an exception, in two ChangeMessageVisibilityBatch calls
    assert len(failures(response)) == 12
    assert call_counter.counts == {"ChangeMessageVisibilityBatch": 2}


def test_records_fan_out_to_max_threads_and_the_pool_is_reused(
    sqs_client: Any, queue_url: str, handlers: Callable[..., LambdaHandler]
) -> None:
    # Given handlers that wait until four of them run at once
    lock = threading.Lock()
    running, most = 0, 0
    together = threading.Barrier(4, timeout=10)
    threads: list[str] = []

    def handler(url: str, message: Any) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.append(threading.current_thread().name)
        together.wait()
        # (and then take 10 ms: records known to take less than a 2 ms batch in all would
        # run inline, and an inline record would wait at the barrier for ones not started)
        time.sleep(0.01)
        with lock:
            running -= 1

    queue = RawQueue(url=queue_url, message_handler_function=handler, sqs_client=sqs_client)
    for i in range(8):
        queue.add_message(f"m{i}")
    lambda_handler = handlers(queue, max_threads=4)

    # When two warm invocations of four records each run
    for _ in range(2):
        event = lambda_event(sqs_client, queue_url, 4)
        assert failures(lambda_handler(event, LocalContext())) == []

    # Then four handlers ran at once, never more, on the same four pool threads
    assert most == 4
    assert len(threads) == 8
    assert len(set(threads)) == 4
    assert all(name.startswith("sqsx-lambda") for name in threads)


def test_max_threads_1_runs_records_inline_in_order(
    sqs_client: Any, queue_url: str, handlers: Callable[..., LambdaHandler]
) -> None:
    calls: list[tuple[str, str]] = []

    def handler(url: str, message: Any) -> None:
        calls.append((threading.current_thread().name, message["Body"]))

    queue = RawQueue(url=queue_url, message_handler_function=handler, sqs_client=sqs_client)
    for i in range(3):
        queue.add_message(f"m{i}")
    event = lambda_event(sqs_client, queue_url, 3)
    handlers(queue, max_threads=1)(event, LocalContext())
    bodies = [record["body"] for record in event["Records"]]
    assert calls == [(threading.current_thread().name, body) for body in bodies]


class SteppedContext:
    """A Lambda context whose remaining time is set by the test."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_records_not_started_near_the_deadline_are_reported_and_visible_at_once(
    sqs_client: Any, make_queue: Callable[..., str], handlers: Callable[..., LambdaHandler]
) -> None:
    # Given three records, a 60 s visibility timeout, and a first record that uses up the time
    url = make_queue(VisibilityTimeout=60)
    context = SteppedContext(remaining_ms=60_000)
    ran: list[str] = []

    def handler(queue_url: str, message: Any) -> None:
        ran.append(message["MessageId"])
        context.remaining_ms = 900  # below the 1000 ms margin from now on

    queue = RawQueue(url=url, message_handler_function=handler, sqs_client=sqs_client)
    for i in range(3):
        queue.add_message(f"m{i}")
    event = lambda_event(sqs_client, url, 3)

    # When the batch runs inline
    response = handlers(queue, max_threads=1, deadline_margin_ms=1000)(event, context)

    # Then only the first ran; the two others are reported and receivable again at once
    first, *rest = [record["messageId"] for record in event["Records"]]
    assert ran == [first]
    assert failures(response) == rest
    delete_as_lambda_would(sqs_client, url, event, rest)
    again = receive(sqs_client, url)
    assert sorted(m["MessageId"] for m in again) == sorted(rest)
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in again} == {"2"}


def test_a_record_still_running_at_the_deadline_is_reported_and_left_invisible(
    sqs_client: Any,
    make_queue: Callable[..., str],
    handlers: Callable[..., LambdaHandler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a fast record and a stuck one, 1400 ms left and a 1000 ms margin (the clock only
    # moves for the give-up point: the invocation stops waiting after 900 ms)
    url = make_queue(VisibilityTimeout=60)
    release = threading.Event()
    pair = threading.Barrier(2, timeout=5)

    def handler(queue_url: str, message: Any) -> None:
        if message["Body"] == "stuck":
            release.wait(30)
        elif message["Body"].startswith("pair"):
            pair.wait()

    queue = RawQueue(url=url, message_handler_function=handler, sqs_client=sqs_client)
    queue.add_message("fast")
    queue.add_message("stuck")
    event = lambda_event(sqs_client, url, 2)
    stuck = next(r["messageId"] for r in event["Records"] if r["body"] == "stuck")
    lambda_handler = handlers(queue, max_threads=2, deadline_margin_ms=1000)

    try:
        # When the invocation gives up on it
        with caplog.at_level(logging.WARNING, logger="sqsx_lambda"):
            response = lambda_handler(event, SteppedContext(remaining_ms=1400))

        # Then it alone is reported, and it stays hidden (its handler may still be running)
        assert failures(response) == [stuck]
        delete_as_lambda_would(sqs_client, url, event, [stuck])
        assert queue_counts(sqs_client, url) == (0, 1, 0)
        assert "still running at the deadline, reported as failures" in caplog.text
        assert stuck in caplog.text

        # And the next invocation still runs two records at once: the stuck thread is not
        # one of its pool's
        queue.add_message("pair-1")
        queue.add_message("pair-2")
        second = lambda_event(sqs_client, url, 2)
        assert failures(lambda_handler(second, LocalContext())) == []
    finally:
        release.set()


@LOCALSTACK_FIFO_GROUP_LOCK
def test_a_failed_record_of_a_fifo_group_holds_back_the_rest_of_its_group(
    sqs_client: Any, make_queue: Callable[..., str], handlers: Callable[..., LambdaHandler]
) -> None:
    # Given two groups interleaved on a FIFO queue; the first entry of group "b" fails once
    url = make_queue(fifo=True, VisibilityTimeout=60)
    queue = Queue(url=url, sqs_client=sqs_client, min_backoff_seconds=1)
    ran: list[tuple[str, int]] = []

    def apply(context: dict[str, Any], group: str, n: int) -> None:
        receive_count = int(context["sqs_message"]["Attributes"]["ApproximateReceiveCount"])
        ran.append((group, n))
        if group == "b" and n == 0 and receive_count == 1:
            raise RuntimeError("first try fails")

    queue.add_task_handler("apply", apply)
    for n in range(3):
        for group in ("a", "b"):
            queue.send_task(
                "apply", {"group": group, "n": n}, group_id=group, deduplication_id=f"{group}{n}"
            )
    event = lambda_event(sqs_client, url, 6)
    group_b = [r["messageId"] for r in event["Records"] if kwargs_of(r)["group"] == "b"]
    lambda_handler = handlers(queue, max_threads=4)

    # When the batch runs
    response = lambda_handler(event, LocalContext())

    # Then group "a" ran in order, group "b" stopped at its failure and is reported whole
    assert [item for item in ran if item[0] == "a"] == [("a", 0), ("a", 1), ("a", 2)]
    assert [item for item in ran if item[0] == "b"] == [("b", 0)]
    assert failures(response) == group_b
    delete_as_lambda_would(sqs_client, url, event, group_b)

    # And SQS redelivers group "b" in order once its head's backoff is over
    again: list[str] = []

    def group_b_back() -> bool:
        again.extend(m["MessageId"] for m in receive(sqs_client, url, wait=1))
        return len(again) >= 3

    assert wait_until(group_b_back, timeout=15)
    assert again == group_b


def test_a_malformed_record_fails_alone(
    sqs_client: Any, make_queue: Callable[..., str], handlers: Callable[..., LambdaHandler]
) -> None:
    # Given two tasks, one of whose records arrives with a broken attribute
    url = make_queue(VisibilityTimeout=60)
    queue = Queue(url=url, sqs_client=sqs_client, min_backoff_seconds=1)
    done: list[int] = []
    queue.add_task_handler("t", lambda context, n: done.append(n))
    queue.add_task("t", n=1)
    queue.add_task("t", n=2)
    event = lambda_event(sqs_client, url, 2)
    broken = event["Records"][1]
    broken["messageAttributes"]["TaskName"]["binaryValue"] = "%%%"

    # When it runs
    response = handlers(queue, max_threads=2)(event, LocalContext())

    # Then the good record ran and the broken one is reported and backed off (not 60 s)
    assert len(done) == 1
    assert failures(response) == [broken["messageId"]]
    delete_as_lambda_would(sqs_client, url, event, [broken["messageId"]])
    assert wait_until(lambda: len(receive(sqs_client, url, wait=1)) == 1, timeout=15)


def test_a_malformed_record_is_deleted_under_poison_policy_delete(
    sqs_client: Any, queue_url: str, handlers: Callable[..., LambdaHandler]
) -> None:
    queue = Queue(url=queue_url, sqs_client=sqs_client, poison_policy="delete")
    queue.add_task("t", n=1)
    event = lambda_event(sqs_client, queue_url, 1)
    event["Records"][0]["body"] = None
    assert failures(handlers(queue)(event, LocalContext())) == []


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({"Records": [{"eventSource": "aws:s3", "s3": {}}]}, id="s3"),
        pytest.param({"httpMethod": "GET", "path": "/"}, id="api-gateway"),
        pytest.param({"Records": [{"eventSource": "aws:sqs", "body": "x"}]}, id="no-message-id"),
        pytest.param("not an object", id="string"),
    ],
)
def test_a_bad_event_raises_before_any_handler_or_sqs_call(
    sqs_client: Any,
    queue_url: str,
    call_counter: CallCounter,
    handlers: Callable[..., LambdaHandler],
    event: Any,
) -> None:
    ran: list[Any] = []
    queue = RawQueue(
        url=queue_url, message_handler_function=lambda u, m: ran.append(m), sqs_client=sqs_client
    )
    with pytest.raises(EventError):
        handlers(queue)(event, LocalContext())
    assert ran == []
    assert sum(call_counter.counts.values()) == 0


def test_a_failed_visibility_change_still_reports_the_record_and_logs_its_id(
    sqs_client: Any,
    queue_url: str,
    handlers: Callable[..., LambdaHandler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a failing record whose visibility change goes to a queue that does not exist
    def fail(url: str, message: Any) -> None:
        raise RuntimeError("no")

    queue = RawQueue(url=queue_url, message_handler_function=fail, sqs_client=sqs_client)
    queue.add_message("m")
    event = lambda_event(sqs_client, queue_url, 1)
    message_id = event["Records"][0]["messageId"]
    gone = queue_url.rsplit("/", 1)[0] + "/no-such-queue"

    # When it runs
    with caplog.at_level(logging.ERROR, logger="sqsx_lambda"):
        response = handlers(queue, queue_url=gone)(event, LocalContext())

    # Then it is still reported, and the error names it
    assert failures(response) == [message_id]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("ChangeMessageVisibilityBatch failed" in e and message_id in e for e in errors)


@pytest.fixture
def restore_sqsx_loggers() -> Iterator[None]:
    """A Powertools Logger given to LambdaHandler reconfigures sqsx's loggers: undo it."""
    loggers = [logging.getLogger(name) for name in ("sqsx", "sqsx_lambda")]
    saved = [(lg.handlers[:], lg.propagate, lg.level) for lg in loggers]
    yield
    for lg, (handlers, propagate, level) in zip(loggers, saved, strict=True):
        lg.handlers[:] = handlers
        lg.propagate = propagate
        lg.setLevel(level)


@pytest.mark.usefixtures("restore_sqsx_loggers")
def test_structured_logs_carry_the_request_id_and_the_message_id(
    sqs_client: Any, queue_url: str, handlers: Callable[..., LambdaHandler]
) -> None:
    # Given a Powertools Logger writing JSON to a buffer
    from aws_lambda_powertools import Logger

    # (a service name of its own: Powertools keeps the first stream given for a name, and this
    # test runs once per server in one process)
    stream = io.StringIO()
    logger = Logger(service=f"sqsx-test-{uuid.uuid4().hex[:8]}", stream=stream, level="INFO")

    def fail(url: str, message: Any) -> None:
        raise Retry(min_backoff_seconds=1)

    queue = RawQueue(url=queue_url, message_handler_function=fail, sqs_client=sqs_client)
    queue.add_message("m")
    event = lambda_event(sqs_client, queue_url, 1)
    context = LocalContext()

    # When the batch runs on the pool
    handlers(queue, max_threads=2, logger=logger)(event, context)

    # Then sqsx's own retry line is JSON with the request id and the message id
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    retry = next(line for line in lines if line["name"] == "sqsx.dispatch")
    assert retry["function_request_id"] == context.aws_request_id
    assert retry["message_id"] == event["Records"][0]["messageId"]
    assert "Retry raised" in retry["message"]
    # ... and the invocation's summary line (logged outside any record) has no message_id
    summary = next(line for line in lines if line["message"].startswith("batch of 1 records"))
    assert summary["function_request_id"] == context.aws_request_id
    assert "message_id" not in summary


def test_bad_options_name_the_bound(sqs_client: Any, queue_url: str) -> None:
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    with pytest.raises(ValueError, match="max_threads must be between 1 and 1024, got 0"):
        LambdaHandler(queue, max_threads=0)
    with pytest.raises(ValueError, match="deadline_margin_ms must be 0 or more, got -1"):
        LambdaHandler(queue, deadline_margin_ms=-1)
