"""The public API (``Queue``, ``RawQueue``) against moto's SQS server over HTTP."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from conftest import CallCounter, Consumer, ScriptRun, make_client, queue_counts, wait_until

from sqsx import MessageTooLargeError, NoRetry, Queue, QueueUnavailableError, RawQueue, Retry
from sqsx.codec import encode_kwargs, message_size, task_attributes

SEED_BODY = "eyJrd2FyZ3MiOiB7ImEiOiAxLCAiYiI6IDIsICJjIjogM319"
ONE_PASS = {"run_forever": False, "polling_wait_seconds": 1, "wait_seconds": 0}


def receive_all(client: Any, url: str) -> list[dict[str, Any]]:
    """Whatever one receive returns, with every attribute."""
    response = client.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=0,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return list(response.get("Messages") or [])


def consume_once(queue: Queue | RawQueue, **options: Any) -> None:
    queue.consume_messages(**{**ONE_PASS, "enable_signal_to_exit_gracefully": False, **options})


# -- producing -----------------------------------------------------------------------------


def test_add_task_returns_the_response_and_writes_the_wire_format(
    sqs_client: Any, queue_url: str
) -> None:
    queue = Queue(url=queue_url, sqs_client=sqs_client)

    response = queue.add_task("my_task", a=1, b=2, c=3)

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["MD5OfMessageBody"] == hashlib.md5(SEED_BODY.encode()).hexdigest()
    [message] = receive_all(sqs_client, queue_url)
    assert message["MessageId"] == response["MessageId"]
    assert message["Body"] == SEED_BODY
    assert message["MessageAttributes"] == {
        "TaskName": {"StringValue": "my_task", "DataType": "String"}
    }


def test_add_message_sends_body_and_attributes_as_given(sqs_client: Any, queue_url: str) -> None:
    queue = RawQueue(url=queue_url, message_handler_function=print, sqs_client=sqs_client)
    attributes = {
        "Attr1": {"DataType": "String", "StringValue": "Attr1"},
        "Raw": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
    }

    response = queue.add_message(message_body="My Message", message_attributes=attributes)

    [message] = receive_all(sqs_client, queue_url)
    assert message["MessageId"] == response["MessageId"]
    assert message["Body"] == "My Message"
    assert message["MessageAttributes"] == attributes


# -- size check ----------------------------------------------------------------------------

LIMIT = 300
RAW_ATTRS = {"Attr1": {"DataType": "String", "StringValue": "Attr1"}}  # 5 + 6 + 5 bytes


def _send(queue: Any, producer: str, payload: str) -> Any:
    if producer == "add_task":
        return queue.add_task("sized", s=payload)
    return queue.add_message(message_body=payload, message_attributes=RAW_ATTRS)


def _size(producer: str, payload: str) -> tuple[int, int]:
    """(size SQS counts, size of the body alone) of what ``_send`` sends."""
    if producer == "add_task":
        body = encode_kwargs({"s": payload})
        return message_size(body, task_attributes("sized")), len(body)
    return message_size(payload, RAW_ATTRS), len(payload)


def _largest_payload(producer: str, limit: int) -> str:
    """The longest run of "x" whose message is at most ``limit`` bytes (a bisection)."""
    low, high = 0, limit  # fits, does not fit
    while high - low > 1:
        middle = (low + high) // 2
        if _size(producer, "x" * middle)[0] <= limit:
            low = middle
        else:
            high = middle
    return "x" * low


def _queue(producer: str, client: Any, url: str, **options: Any) -> Any:
    if producer == "add_task":
        return Queue(url=url, sqs_client=client, **options)
    return RawQueue(url=url, message_handler_function=print, sqs_client=client, **options)


@pytest.mark.parametrize("producer", ["add_task", "add_message"])
def test_a_per_queue_limit_counts_attributes_and_refuses_before_sending(
    sqs_client: Any, queue_url: str, producer: str
) -> None:
    # Given a queue limited to 300 bytes and the largest payload that fits
    queue = _queue(producer, sqs_client, queue_url, max_message_bytes=LIMIT)
    fits = _largest_payload(producer, LIMIT)

    # When it is sent, then one character more
    _send(queue, producer, fits)
    too_big = fits + "x" * 4  # a base64 body grows in steps of 4 characters
    size, body_only = _size(producer, too_big)
    with pytest.raises(ValueError, match=rf"^message is {size} bytes .* limit of {LIMIT} bytes$"):
        _send(queue, producer, too_big)

    # Then only the first reached the server; the refused one fitted without its attributes
    assert body_only <= LIMIT < size
    assert queue_counts(sqs_client, queue_url) == (1, 0, 0)


@pytest.mark.parametrize("producer", ["add_task", "add_message"])
def test_default_limit_is_sqs_one_mebibyte(sqs_client: Any, queue_url: str, producer: str) -> None:
    # Given the default limit and the largest message within it (body plus attributes)
    queue = _queue(producer, sqs_client, queue_url)
    assert queue.max_message_bytes == 1_048_576
    fits = _largest_payload(producer, 1_048_576)
    assert _size(producer, fits)[0] > 1_048_576 - 4

    # When it is sent it is accepted, and a larger one is refused before sending
    _send(queue, producer, fits)
    with pytest.raises(MessageTooLargeError) as info:
        _send(queue, producer, fits + "xxxx")
    assert info.value.limit == 1_048_576
    assert info.value.size > 1_048_576
    assert f"limit of {1_048_576} bytes" in str(info.value)
    assert queue_counts(sqs_client, queue_url) == (1, 0, 0)


# -- consuming: outcomes -------------------------------------------------------------------


def test_handler_gets_the_seed_context_and_the_message_is_deleted(
    sqs_client: Any, queue_url: str, call_counter: CallCounter
) -> None:
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    calls: list[tuple[dict[str, Any], int, int, int]] = []

    def task_handler(context: dict[str, Any], a: int, b: int, c: int) -> None:
        calls.append((context, a, b, c))

    queue.add_task_handler("my_task", task_handler)
    sent = queue.add_task("my_task", a=1, b=2, c=3)

    consume_once(queue)

    [(context, a, b, c)] = calls
    assert (a, b, c) == (1, 2, 3)
    assert set(context) == {"queue_url", "task_name", "sqs_message"}
    assert (context["queue_url"], context["task_name"]) == (queue_url, "my_task")
    message = context["sqs_message"]
    assert {"MessageId", "ReceiptHandle", "MD5OfBody", "Body", "Attributes"} <= set(message)
    assert message["MessageId"] == sent["MessageId"]
    assert message["Body"] == SEED_BODY
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    assert "SentTimestamp" in message["Attributes"]
    assert message["MessageAttributes"]["TaskName"] == {
        "StringValue": "my_task",
        "DataType": "String",
    }
    assert queue_counts(sqs_client, queue_url) == (0, 0, 0)
    assert call_counter.counts["DeleteMessage"] == 0
    assert call_counter.counts["DeleteMessageBatch"] == 1


def test_raw_queue_handler_gets_queue_url_and_message(sqs_client: Any, queue_url: str) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    queue = RawQueue(
        url=queue_url,
        message_handler_function=lambda url, message: calls.append((url, message)),
        sqs_client=sqs_client,
    )
    queue.add_message(
        message_body="My Message",
        message_attributes={"Attr1": {"DataType": "String", "StringValue": "Attr1"}},
    )

    consume_once(queue)

    [(url, message)] = calls
    assert url == queue_url
    assert message["Body"] == "My Message"
    assert message["MessageAttributes"] == {"Attr1": {"StringValue": "Attr1", "DataType": "String"}}
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    assert queue_counts(sqs_client, queue_url) == (0, 0, 0)


def test_no_retry_deletes_the_message(sqs_client: Any, queue_url: str) -> None:
    queue = Queue(url=queue_url, sqs_client=sqs_client)

    def give_up(context: dict[str, Any]) -> None:
        raise NoRetry()

    queue.add_task_handler("give_up", give_up)
    queue.add_task("give_up")

    consume_once(queue)

    assert queue_counts(sqs_client, queue_url) == (0, 0, 0)
    assert queue.stats().no_retry == 1


UNPROCESSABLE = [
    pytest.param({"task": "ghost"}, "no handler registered for task 'ghost'", id="unknown-task"),
    pytest.param({"body": SEED_BODY}, "TaskName is missing", id="no-taskname"),
    pytest.param({"body": "%%%", "task": "known"}, "not base64", id="undecodable"),
    pytest.param({"task": "known", "kwargs": {"x": 1}}, "do not fit", id="kwargs-do-not-fit"),
]


@pytest.mark.parametrize(("send", "reason"), UNPROCESSABLE)
def test_unprocessable_message_is_backed_off_not_deleted(
    sqs_client: Any,
    queue_url: str,
    call_counter: CallCounter,
    caplog: pytest.LogCaptureFixture,
    send: dict[str, Any],
    reason: str,
) -> None:
    # Given a queue with a 60 s minimum backoff and a message no handler can take
    queue = Queue(url=queue_url, sqs_client=sqs_client, min_backoff_seconds=60)
    queue.add_task_handler("known", lambda context: None)
    if "body" in send:
        attributes = task_attributes(send["task"]) if "task" in send else {}
        sent = sqs_client.send_message(
            QueueUrl=queue_url, MessageBody=send["body"], MessageAttributes=attributes
        )
    else:
        sent = queue.add_task(send["task"], **send.get("kwargs", {}))

    # When it is consumed
    with caplog.at_level(logging.WARNING, logger="sqsx"):
        consume_once(queue)

    # Then it is logged with its id and reason, and hidden (backed off), not deleted
    assert any(
        sent["MessageId"] in r.getMessage() and reason in r.getMessage() for r in caplog.records
    )
    assert queue_counts(sqs_client, queue_url) == (0, 1, 0)
    assert call_counter.counts["ChangeMessageVisibilityBatch"] == 1
    assert call_counter.counts["DeleteMessageBatch"] == 0
    assert queue.stats().unprocessable == 1


def test_poison_policy_delete_deletes_an_unknown_task(sqs_client: Any, queue_url: str) -> None:
    queue = Queue(url=queue_url, sqs_client=sqs_client, poison_policy="delete")
    queue.add_task("ghost")
    consume_once(queue)
    assert queue_counts(sqs_client, queue_url) == (0, 0, 0)
    assert queue.stats().unprocessable == 1


def test_retry_with_zero_min_backoff_comes_back_at_once(sqs_client: Any, queue_url: str) -> None:
    # Given a queue whose own backoff (60 s) would hide the message for the whole test
    queue = Queue(url=queue_url, sqs_client=sqs_client, min_backoff_seconds=60)
    counts: list[int] = []

    def again(context: dict[str, Any]) -> None:
        counts.append(int(context["sqs_message"]["Attributes"]["ApproximateReceiveCount"]))
        if len(counts) == 1:
            raise Retry(min_backoff_seconds=0)

    queue.add_task_handler("again", again)
    queue.add_task("again")

    # When the handler asks for Retry(min_backoff_seconds=0) on the first delivery
    consumer = Consumer(queue)
    try:
        assert wait_until(lambda: queue.stats().succeeded == 1, timeout=10)
    finally:
        consumer.stop()

    # Then the message was received again at once (0 is honoured, not the queue's 60 s)
    assert counts == [1, 2]
    assert queue_counts(sqs_client, queue_url) == (0, 0, 0)


# -- consuming: run_forever=False ----------------------------------------------------------


def test_run_forever_false_does_one_receive_and_processes_what_came(
    sqs_client: Any, queue_url: str, call_counter: CallCounter
) -> None:
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    done: list[int] = []
    queue.add_task_handler("t", lambda context, n: done.append(n))
    for n in range(3):
        queue.add_task("t", n=n)

    consume_once(queue, max_messages=10, max_threads=3)

    assert call_counter.counts["ReceiveMessage"] == 1
    received = queue.stats().received
    assert received >= 1
    assert len(done) == received
    assert queue_counts(sqs_client, queue_url) == (3 - received, 0, 0)


def test_run_forever_false_returns_on_an_empty_queue(
    sqs_client: Any, queue_url: str, call_counter: CallCounter
) -> None:
    # Given an empty queue, a 1 s long poll and a 60 s pause after empty receives
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    runner = threading.Thread(
        target=consume_once, args=(queue,), kwargs={"wait_seconds": 60}, daemon=True
    )

    # When one pass runs
    runner.start()
    runner.join(15)

    # Then it returned after its single receive, without sleeping wait_seconds (0.7 never did)
    assert not runner.is_alive()
    assert call_counter.counts["ReceiveMessage"] == 1


# -- consuming: lifecycle ------------------------------------------------------------------


def test_context_manager_consumes_and_keeps_handlers(sqs_client: Any, queue_url: str) -> None:
    done: list[int] = []
    with Queue(url=queue_url, sqs_client=sqs_client) as queue:
        queue.add_task_handler("my_task", lambda context, a: done.append(a))
        queue.add_task("my_task", a=1)
        queue.consume_messages(run_forever=False, polling_wait_seconds=1)

    assert isinstance(queue, Queue)
    assert done == [1]
    assert queue_counts(sqs_client, queue_url) == (0, 0, 0)
    assert queue.task_names == ["my_task"]  # close() no longer clears handlers


def test_close_stops_a_running_consumer_and_is_idempotent(sqs_client: Any, queue_url: str) -> None:
    # Given a consumer running in another thread
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    queue.add_task_handler("t", lambda context: None)
    counter = CallCounter(sqs_client)
    consumer = Consumer(queue)
    assert wait_until(lambda: counter.counts["ReceiveMessage"] >= 1)

    # When the queue is closed (twice)
    queue.close()
    queue.close()

    # Then the consumer has ended, handlers are kept, and the queue works for a new run
    assert not consumer.thread.is_alive()
    assert consumer.error is None
    assert queue.task_names == ["t"]
    queue.add_task("t")
    consume_once(queue)
    assert queue.stats().succeeded == 1


def test_exit_gracefully_is_idempotent_and_waits_for_running_handlers(
    sqs_client: Any, queue_url: str
) -> None:
    # Given a handler that is running
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    started, proceed = threading.Event(), threading.Event()

    def slow(context: dict[str, Any]) -> None:
        started.set()
        proceed.wait(10)

    queue.add_task_handler("slow", slow)
    queue.add_task("slow")
    consumer = Consumer(queue)
    assert started.wait(10)

    # When a stop is asked three times, then the handler finishes
    for _ in range(3):
        queue.exit_gracefully()
    proceed.set()
    consumer.stop()

    # Then the run ended gracefully: the handler's message was deleted, not forced
    assert queue.forced_stop is False
    assert queue.stats().succeeded == 1
    assert queue_counts(sqs_client, queue_url) == (0, 0, 0)


def test_a_stop_asked_before_consuming_ends_the_next_run_at_once(
    sqs_client: Any, queue_url: str, call_counter: CallCounter
) -> None:
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    queue.exit_gracefully()
    runner = threading.Thread(
        target=queue.consume_messages,
        kwargs={"enable_signal_to_exit_gracefully": False, "polling_wait_seconds": 1},
        daemon=True,
    )
    runner.start()
    runner.join(15)
    assert not runner.is_alive()
    assert call_counter.counts["ReceiveMessage"] <= 1


def test_handlers_registered_while_consuming_are_used(sqs_client: Any, queue_url: str) -> None:
    # Given a consumer that has started polling with no handler at all
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    counter = CallCounter(sqs_client)
    consumer = Consumer(queue, max_threads=2)
    seen: list[tuple[str, int]] = []
    try:
        assert wait_until(lambda: counter.counts["ReceiveMessage"] >= 1)

        # When a handler is registered and its task sent, then replaced and sent again
        queue.add_task_handler("late", lambda context, n: seen.append(("first", n)))
        queue.add_task("late", n=1)
        assert wait_until(lambda: len(seen) == 1)
        queue.add_task_handler("late", lambda context, n: seen.append(("second", n)))
        queue.add_task("late", n=2)
        assert wait_until(lambda: len(seen) == 2)
    finally:
        consumer.stop()

    # Then each task ran on the handler registered at the time
    assert seen == [("first", 1), ("second", 2)]
    assert queue.stats().unprocessable == 0


# -- signals -------------------------------------------------------------------------------


def _sentinel(signum: int, frame: FrameType | None) -> None:
    """A handler that must be back in place after consuming."""


@pytest.fixture
def sentinel_handlers() -> Iterator[None]:
    """SIGINT and SIGTERM handled by ``_sentinel`` during the test, restored afterwards."""
    previous = {s: signal.signal(s, _sentinel) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def test_signal_handlers_are_installed_while_consuming_and_restored(
    sqs_client: Any, queue_url: str, sentinel_handlers: None
) -> None:
    # Given a task that records the handlers in place while it runs
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    during: list[Any] = []
    queue.add_task_handler(
        "t", lambda context: during.extend(map(signal.getsignal, (signal.SIGINT, signal.SIGTERM)))
    )
    queue.add_task("t")

    # When consuming with signal handling enabled (the default) in the main thread
    queue.consume_messages(run_forever=False, polling_wait_seconds=1)

    # Then sqsx's handlers were in place during the run, and the previous ones after it
    assert len(during) == 2
    assert all(handler is not _sentinel for handler in during)
    assert signal.getsignal(signal.SIGINT) is _sentinel
    assert signal.getsignal(signal.SIGTERM) is _sentinel


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_consuming_gracefully_in_process(
    sqs_client: Any, queue_url: str, sentinel_handlers: None, signum: int
) -> None:
    # Given a task that sends this process a signal from its handler thread
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    finished: list[bool] = []

    def signal_myself(context: dict[str, Any]) -> None:
        os.kill(os.getpid(), signum)
        finished.append(True)

    queue.add_task_handler("t", signal_myself)
    queue.add_task("t")

    # When consuming forever in the main thread
    queue.consume_messages(polling_wait_seconds=1, wait_seconds=0)

    # Then the signal ended the run gracefully: the task finished and was deleted
    assert finished == [True]
    assert queue.forced_stop is False
    assert queue_counts(sqs_client, queue_url) == (0, 0, 0)
    assert signal.getsignal(signum) is _sentinel


SIGNAL_SCRIPT = textwrap.dedent(
    """
    import logging, signal, sys, time
    import boto3
    from sqsx import Queue

    logging.basicConfig(level=logging.INFO)
    endpoint, url, task = sys.argv[1:4]

    def sentinel(signum, frame):
        pass

    signal.signal(signal.SIGINT, sentinel)
    signal.signal(signal.SIGTERM, sentinel)
    client = boto3.client(
        "sqs", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
    )
    queue = Queue(url=url, sqs_client=client)

    def quick(context):
        print("running quick", flush=True)

    def stuck(context):
        print("running stuck", flush=True)
        time.sleep(60)

    queue.add_task_handler("quick", quick)
    queue.add_task_handler("stuck", stuck)
    queue.add_task(task)
    queue.consume_messages(polling_wait_seconds=1, wait_seconds=0)
    restored = all(signal.getsignal(s) is sentinel for s in (signal.SIGINT, signal.SIGTERM))
    print(f"returned forced={queue.forced_stop} restored={restored}", flush=True)
    """
)

SIGNAL_CASES = [
    # task, signals sent -> forced stop
    pytest.param("quick", [signal.SIGTERM], False, id="sigterm-graceful"),
    pytest.param("stuck", [signal.SIGTERM, signal.SIGTERM], True, id="second-sigterm-forces"),
    pytest.param("stuck", [signal.SIGINT, signal.SIGINT], True, id="second-sigint-forces"),
]


@pytest.mark.parametrize(("task", "signals", "forced"), SIGNAL_CASES)
def test_signals_stop_a_worker_process(
    endpoint_url: str,
    sqs_client: Any,
    queue_url: str,
    tmp_path: Path,
    task: str,
    signals: list[int],
    forced: bool,
) -> None:
    # Given a worker process running a task
    script = tmp_path / "worker.py"
    script.write_text(SIGNAL_SCRIPT)
    run = ScriptRun([sys.executable, str(script), endpoint_url, queue_url, task])
    try:
        run.wait_for(f"running {task}")

        # When it gets its signals (the second one while the first stop is under way)
        for signum in signals:
            run.send_signal(signum)
            assert wait_until(lambda: "Starting graceful shutdown" in run.errors, timeout=10)

        # Then it exits 0 without deadlock, forced only by a second signal, handlers restored
        assert run.finish(timeout=30) == 0, run.errors
    finally:
        run.kill()
    assert f"returned forced={forced} restored=True" in run.output
    assert "Traceback" not in run.errors
    # a graceful stop deleted the finished task; a forced one left the stuck task in flight
    assert queue_counts(sqs_client, queue_url) == ((0, 1, 0) if forced else (0, 0, 0))
    assert ("Second stop request" in run.errors) is forced


# -- SQS errors ----------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_nonexistent_queue_raises_queue_unavailable(
    endpoint_url: str, sqs_client: Any, sentinel_handlers: None
) -> None:
    url = f"{endpoint_url}/000000000000/missing-{uuid.uuid4().hex[:12]}"
    queue = Queue(url=url, sqs_client=sqs_client)

    with pytest.raises(QueueUnavailableError, match="NonExistentQueue") as info:
        queue.consume_messages(polling_wait_seconds=1, wait_seconds=0)

    assert isinstance(info.value.__cause__, ClientError)
    assert signal.getsignal(signal.SIGTERM) is _sentinel


def test_a_queue_deleted_while_consuming_ends_the_run(
    sqs_client: Any, make_queue: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = make_queue()
    queue = Queue(url=url, sqs_client=sqs_client)
    counter = CallCounter(sqs_client)
    consumer = Consumer(queue)
    assert wait_until(lambda: counter.counts["ReceiveMessage"] >= 1)

    with caplog.at_level(logging.ERROR, logger="sqsx"):
        sqs_client.delete_queue(QueueUrl=url)
        consumer.thread.join(20)

    assert not consumer.thread.is_alive()
    assert isinstance(consumer.error, QueueUnavailableError)
    assert "SQS refused ReceiveMessage: AWS.SimpleQueueService.NonExistentQueue" in caplog.text


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "injected",
    )


TRANSIENT = [
    pytest.param(
        lambda: _client_error("ThrottlingException", 400), "ThrottlingException", id="throttle"
    ),
    pytest.param(lambda: _client_error("InternalError", 500), "InternalError", id="http-500"),
    pytest.param(
        lambda: EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        "EndpointConnectionError",
        id="connection",
    ),
]


class FailFirst:
    """A ``before-call`` hook that raises a made-up error on the first ``times`` calls."""

    def __init__(self, client: Any, operation: str, error: Any, times: int) -> None:
        self.left = times
        self._error = error
        self._lock = threading.Lock()
        client.meta.events.register(f"before-call.sqs.{operation}", self)

    def __call__(self, **_: Any) -> None:
        with self._lock:
            if self.left <= 0:
                return
            self.left -= 1
        raise self._error()


@pytest.mark.fault
@pytest.mark.parametrize(("error", "code"), TRANSIENT)
def test_transient_receive_errors_are_logged_and_the_worker_goes_on(
    endpoint_url: str,
    queue_url: str,
    caplog: pytest.LogCaptureFixture,
    error: Any,
    code: str,
) -> None:
    # Given a client whose first two ReceiveMessage calls fail
    client = make_client(endpoint_url)
    injected = FailFirst(client, "ReceiveMessage", error, times=2)
    queue = Queue(url=queue_url, sqs_client=client)
    done: list[int] = []
    queue.add_task_handler("t", lambda context, n: done.append(n))
    queue.add_task("t", n=1)

    # When a worker consumes
    with caplog.at_level(logging.WARNING, logger="sqsx"):
        consumer = Consumer(queue)
        try:
            assert wait_until(lambda: done == [1], timeout=20)
        finally:
            consumer.stop()

    # Then both failures were logged with the error code, and the task still ran
    assert injected.left == 0
    failures = [r for r in caplog.records if f"ReceiveMessage failed: {code}" in r.getMessage()]
    assert len(failures) == 2
    assert queue_counts(client, queue_url) == (0, 0, 0)


@pytest.mark.fault
@pytest.mark.parametrize(
    ("operation", "raises"),
    [
        pytest.param("DeleteMessageBatch", False, id="delete"),
        pytest.param("ChangeMessageVisibilityBatch", True, id="change-visibility"),
    ],
)
def test_transient_ack_errors_are_logged_and_retried(
    endpoint_url: str,
    queue_url: str,
    caplog: pytest.LogCaptureFixture,
    operation: str,
    raises: bool,
) -> None:
    # Given a client whose first call of the operation is throttled
    client = make_client(endpoint_url)
    injected = FailFirst(client, operation, lambda: _client_error("ThrottlingException", 400), 1)
    queue = Queue(url=queue_url, sqs_client=client, min_backoff_seconds=60)
    counts: list[int] = []

    def handler(context: dict[str, Any]) -> None:
        counts.append(int(context["sqs_message"]["Attributes"]["ApproximateReceiveCount"]))
        if raises and len(counts) == 1:
            raise Retry(min_backoff_seconds=0)

    queue.add_task_handler("t", handler)
    queue.add_task("t")

    # When a worker consumes (a retried task comes back at once with Retry(0))
    with caplog.at_level(logging.WARNING, logger="sqsx"):
        consumer = Consumer(queue)
        try:
            assert wait_until(lambda: queue_counts(client, queue_url) == (0, 0, 0), timeout=20)
        finally:
            consumer.stop()

    # Then the failed call was logged with its code and retried until it went through
    assert injected.left == 0
    assert f"{operation} call failed: ThrottlingException" in caplog.text
    assert counts == ([1, 2] if raises else [1])


def test_copy_keeps_kind_settings_and_handlers(sqs_client: Any, make_queue: Any) -> None:
    # Given a configured queue with a handler, and a second queue on the server
    first, second = make_queue(), make_queue()
    queue = Queue(
        url=first,
        sqs_client=sqs_client,
        min_backoff_seconds=3,
        max_backoff_seconds=7,
        poison_policy="delete",
        validate_on_send=True,
    )
    seen: list[int] = []
    queue.add_task_handler("t", lambda context, n: seen.append(n))

    # When it is copied for the second URL
    twin = queue.copy(url=second)

    # Then the copy has the same settings and handlers, and works on its own URL
    assert (twin.url, twin.min_backoff_seconds, twin.max_backoff_seconds) == (second, 3, 7)
    assert twin.task_names == ["t"] and twin.sqs_client is sqs_client
    twin.add_task("t", n=5)
    twin.consume_messages(
        run_forever=False, polling_wait_seconds=1, enable_signal_to_exit_gracefully=False
    )
    assert seen == [5]
    raw = RawQueue(url=first, message_handler_function=print, sqs_client=sqs_client)
    assert raw.copy(url=second).dispatcher.handler is print  # type: ignore[attr-defined]
