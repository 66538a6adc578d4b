"""The Lambda runtime's inline pass (``sqsx_lambda.inline``) against the general path
(``Dispatcher.begin`` on the runner), on events received from moto over HTTP: the same
response and the same fate per record, FIFO groups included; the hand-over to threads once
records prove slow; and the record conversion's usual-shape read against the general one."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import lambda_event

from sqsx import NoRetry, Queue, Retry
from sqsx.hooks import Hook, Processing
from sqsx_lambda import LambdaHandler
from sqsx_lambda.batch import RecordResult
from sqsx_lambda.invoke import LocalContext
from sqsx_lambda.records import RecordError, read_record, to_boto3, to_lambda


class Observer(Hook):
    """An observing hook: its queue has no plain lane, so records take the general path."""

    def before_process(self, processing: Processing) -> None:
        pass


class CountedBegin:
    """Wraps ``Dispatcher.begin`` to count the records that took the general path."""

    def __init__(self, begin: Callable[..., Any]) -> None:
        self.begin = begin
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.begin(*args, **kwargs)


def task_queue(client: Any, url: str, *, general: bool) -> Queue:
    queue = Queue(url=url, sqs_client=client, min_backoff_seconds=2, max_backoff_seconds=9)

    def work(context: dict[str, Any], kind: str, group: str = "") -> None:
        if kind == "retry":
            raise Retry(min_backoff_seconds=3)
        if kind == "no_retry":
            raise NoRetry()
        if kind == "boom":
            raise RuntimeError("boom")

    queue.add_task_handler("work", work)
    if general:
        queue.add_hook(Observer())
    queue.dispatcher.begin = CountedBegin(queue.dispatcher.begin)  # type: ignore[method-assign]
    return queue


def begun(queue: Queue) -> int:
    counted: CountedBegin = queue.dispatcher.begin  # type: ignore[assignment]
    return counted.calls


def fates(results: list[RecordResult]) -> list[tuple[Any, ...]]:
    return [
        (
            r.message.message_id,
            r.fate,
            None if r.outcome is None else (r.outcome.verdict, r.outcome.retry_after),
            r.reported,
            r.visibility_timeout,
        )
        for r in results
    ]


def send_mixed(client: Any, url: str, fifo: bool = False) -> None:
    queue = Queue(url=url, sqs_client=client)
    kinds = ["ok", "retry", "ok", "no_retry", "boom", "ok", "bad-kwargs", "unknown", "ok"]
    for n, kind in enumerate(kinds):
        group = "ab"[n % 2]
        options: dict[str, Any] = {"group_id": group, "deduplication_id": str(n)} if fifo else {}
        if kind == "bad-kwargs":
            queue.send_task("work", {"kind": "ok", "extra": 1}, **options)
        elif kind == "unknown":
            queue.send_task("nobody", {"kind": "ok"}, **options)
        else:
            queue.send_task("work", {"kind": kind, "group": group}, **options)
    body = base64.urlsafe_b64encode(b'{"kwargs": {"kind": "ok", "kind": "boom"}}').decode()
    attributes = {"TaskName": {"DataType": "String", "StringValue": "work"}}
    fifo_options = {"MessageGroupId": "a", "MessageDeduplicationId": "dup"} if fifo else {}
    client.send_message(
        QueueUrl=url, MessageBody=body, MessageAttributes=attributes, **fifo_options
    )


@pytest.mark.parametrize(
    "fifo", [pytest.param(False, id="standard"), pytest.param(True, id="fifo")]
)
def test_the_inline_pass_gives_every_record_the_fate_of_the_general_path(
    sqs_client: Any,
    make_queue: Callable[..., str],
    handlers: Callable[..., LambdaHandler],
    fifo: bool,
) -> None:
    # Given one event of successes, retries, NoRetry, an exception, bad kwargs, an unknown
    # task and a duplicate key (on a FIFO queue: two interleaved groups)
    url = make_queue(fifo=fifo, VisibilityTimeout=60)
    send_mixed(sqs_client, url, fifo)
    event = lambda_event(sqs_client, url, 10)
    inline_queue = task_queue(sqs_client, url, general=False)
    general_queue = task_queue(sqs_client, url, general=True)
    inline = handlers(inline_queue, max_threads=1)
    general = handlers(general_queue, max_threads=1)

    # When both paths process it
    by_inline = inline.process_records(event["Records"], LocalContext())
    by_general = general.process_records(event["Records"], LocalContext())

    # Then every record has the same fate, backoff and visibility change on both
    assert fates(by_inline) == fates(by_general)
    reported = [r for r in by_inline if r.reported]
    assert 5 <= len(reported) < 10
    assert begun(general_queue) == 10 - len([r for r in by_general if r.fate.value == "skipped"])
    if fifo:  # the first failure of a group holds back the rest of it: the runner took over
        assert any(r.fate.value == "skipped" and "failed" in r.reason for r in by_inline)
        assert 0 < begun(inline_queue) < 10
    else:  # every record ran inline, without Dispatcher.begin
        assert begun(inline_queue) == 0


def test_a_clean_batch_answers_without_reporting_and_matches_process_records(
    sqs_client: Any, make_queue: Callable[..., str], handlers: Callable[..., LambdaHandler]
) -> None:
    # Given ten tasks that succeed, seen by one handler through the inline pass
    url = make_queue(VisibilityTimeout=60)
    queue = task_queue(sqs_client, url, general=False)
    for _ in range(10):
        queue.send_task("work", {"kind": "ok"})
    event = lambda_event(sqs_client, url, 10)
    handler = handlers(queue, max_threads=1)

    # When it answers the event, and lists the results
    response = handler(event, LocalContext())
    results = handler.process_records(event["Records"], LocalContext())

    # Then nothing is reported, and each record has its own success outcome, in order
    assert response == {"batchItemFailures": []}
    assert [r.message.message_id for r in results] == [
        record["messageId"] for record in event["Records"]
    ]
    assert all(r.outcome is not None and r.outcome.verdict.value == "succeeded" for r in results)


def test_a_succeeded_record_s_result_carries_the_message_its_handler_saw(
    sqs_client: Any, make_queue: Callable[..., str], handlers: Callable[..., LambdaHandler]
) -> None:
    # Given three tasks whose handler keeps the sqs_message it is given, inline
    url = make_queue(VisibilityTimeout=60)
    queue = Queue(url=url, sqs_client=sqs_client)
    seen: list[Any] = []
    queue.add_task_handler("keep", lambda context, n: seen.append(context["sqs_message"]))
    for n in range(3):
        queue.send_task("keep", {"n": n})
    event = lambda_event(sqs_client, url, 3)

    # When the records are processed and their results listed
    results = handlers(queue, max_threads=1).process_records(event["Records"], LocalContext())

    # Then each result's message is the very dict its handler saw, read as read_record reads
    assert [r.message.raw for r in results] == seen
    assert all(r.message.raw is raw for r, raw in zip(results, seen, strict=True))
    expected = [read_record(record) for record in event["Records"]]
    assert [(m.message_id, m.receipt_handle, m.receive_count) for m in expected] == [
        (r.message.message_id, r.message.receipt_handle, r.message.receive_count) for r in results
    ]


def test_records_that_prove_slow_inline_are_handed_to_the_threads(
    sqs_client: Any, make_queue: Callable[..., str], handlers: Callable[..., LambdaHandler]
) -> None:
    # Given a handler whose records were fast in the invocations before
    url = make_queue(VisibilityTimeout=60)
    queue = Queue(url=url, sqs_client=sqs_client)
    slow = threading.Event()
    threads: list[str] = []

    def work(context: dict[str, Any]) -> None:
        threads.append(threading.current_thread().name)
        if slow.is_set():
            time.sleep(0.02)

    queue.add_task_handler("work", work)
    for _ in range(6):
        queue.send_task("work", {})
    event = lambda_event(sqs_client, url, 6)
    handler = handlers(queue, max_threads=6)
    for _ in range(3):
        assert handler(event, LocalContext()) == {"batchItemFailures": []}
    assert threads[-6:] == [threading.current_thread().name] * 6  # the warm ones ran inline

    # When the records turn slow (20 ms each, over the 2 ms inline budget)
    threads.clear()
    slow.set()
    response = handler(event, LocalContext())

    # Then the first ran inline, the rest on the pool, and every record succeeded
    assert response == {"batchItemFailures": []}
    assert len(threads) == 6
    assert threads[0] == threading.current_thread().name
    assert any(name.startswith("sqsx-lambda") for name in threads[1:])


def record_variants() -> list[Any]:
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "rh-1",
        "MD5OfBody": "5d41402abc4b2a76b9719d911017c592",
        "Body": "hello",
        "Attributes": {"ApproximateReceiveCount": "3", "MessageGroupId": "g"},
        "MD5OfMessageAttributes": "0" * 32,
        "MessageAttributes": {"TaskName": {"DataType": "String", "StringValue": "t"}},
    }
    base = to_lambda(message, event_source_arn="arn:aws:sqs:us-east-1:000000000000:q")
    edits: list[Callable[[dict[str, Any]], None]] = [
        lambda r: None,
        lambda r: r.pop("md5OfMessageAttributes"),
        lambda r: r.update(md5OfMessageAttributes=None),
        lambda r: r.update(messageAttributes={}),
        lambda r: r.pop("messageAttributes"),
        lambda r: r.update(messageAttributes=[]),
        lambda r: r.pop("attributes"),
        lambda r: r.update(attributes={"ApproximateReceiveCount": 2}),
        lambda r: r.update(attributes={"ApproximateReceiveCount": "x"}),
        lambda r: r.update(attributes={"ApproximateReceiveCount": "0"}),
        lambda r: r.update(attributes="nope"),
        lambda r: r.update(body=None),
        lambda r: r.update(receiptHandle=""),
        lambda r: r.pop("md5OfBody"),
        lambda r: r.update(md5OfBody=None),
        lambda r: r["messageAttributes"]["TaskName"].update(binaryValue="aGk="),
        lambda r: r["messageAttributes"]["TaskName"].update(binaryValue="%%%"),
        lambda r: r["messageAttributes"]["TaskName"].update(stringListValues=["a"]),
        lambda r: r["messageAttributes"]["TaskName"].pop("stringListValues"),
        lambda r: r["messageAttributes"]["TaskName"].update(stringValue=""),
        lambda r: r["messageAttributes"]["TaskName"].update(dataType=""),
        lambda r: r["messageAttributes"].update(
            Other={"dataType": "Binary", "binaryValue": "aGk="}
        ),
        lambda r: r["messageAttributes"].update(Bad="not an object"),
    ]
    variants = []
    for edit in edits:
        record = to_lambda(message, event_source_arn=base["eventSourceARN"])
        edit(record)
        variants.append(record)
    return variants


@pytest.mark.parametrize("record", record_variants())
def test_read_record_reads_the_usual_shape_as_to_boto3_does(record: dict[str, Any]) -> None:
    # Given a record in the usual shape or one field off it
    try:
        expected = to_boto3(record)
    except ValueError:
        expected = None
    # When it is read
    try:
        message = read_record(record)
    except RecordError:
        message = None
    # Then it is the message the field-by-field conversion makes, or refused by both
    assert (message is None) == (expected is None)
    if message is not None and expected is not None:
        assert message.raw == expected
        assert message.message_id == expected["MessageId"]
        assert message.receipt_handle == expected["ReceiptHandle"]
        count = expected["Attributes"].get("ApproximateReceiveCount", "1")
        assert message.receive_count == max(int(count) if str(count).isdecimal() else 1, 1)
        assert message.group_id == expected["Attributes"].get("MessageGroupId")
