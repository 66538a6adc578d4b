"""The polling worker's receivers decode task bodies ahead of processing
(``Dispatcher.predecode``, ``Message.decoded_task``): the same fates, the same handler
calls, whether a message was decoded ahead or not."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Consumer, make_client, queue_counts, wait_until

from sqsx import Queue, RawQueue, Verdict
from sqsx.codec import encode_kwargs
from sqsx.message import Message

URL = "http://127.0.0.1:9/000000000000/predecode"
OFFLINE = make_client("http://127.0.0.1:9")  # nothing listens: decoding makes no call


def _message(body: str | None, task: str | None = "t") -> Message:
    raw: dict[str, Any] = {"MessageId": "m", "ReceiptHandle": "r"}
    if body is not None:
        raw["Body"] = body
    if task is not None:
        raw["MessageAttributes"] = {"TaskName": {"DataType": "String", "StringValue": task}}
    return Message.from_boto3(raw)


@pytest.mark.parametrize(
    ("body", "task", "decodable", "verdict"),
    [
        pytest.param(encode_kwargs({"n": 1}), "t", True, Verdict.SUCCEEDED, id="good"),
        pytest.param(encode_kwargs({"m": 1}), "t", True, Verdict.UNPROCESSABLE, id="wrong-kwargs"),
        pytest.param(encode_kwargs({"n": 1}), "x", True, Verdict.UNPROCESSABLE, id="unknown-task"),
        pytest.param("not base64!", "t", False, Verdict.UNPROCESSABLE, id="malformed-body"),
        pytest.param(None, "t", False, Verdict.UNPROCESSABLE, id="no-body"),
        pytest.param(encode_kwargs({"n": 1}), None, False, Verdict.UNPROCESSABLE, id="no-name"),
    ],
)
def test_a_message_decoded_ahead_meets_the_fate_of_one_that_was_not(
    body: str | None, task: str | None, decodable: bool, verdict: Verdict
) -> None:
    queue = Queue(URL, sqs_client=OFFLINE)
    calls: list[Any] = []
    queue.add_task_handler("t", lambda context, n: calls.append((context["task_name"], n)))
    ahead, plain = _message(body, task), _message(body, task)
    queue.dispatcher.predecode([ahead])
    assert (ahead.decoded_task is not None) is decodable
    first, second = queue.dispatcher.process(ahead), queue.dispatcher.process(plain)
    assert first.verdict is second.verdict is verdict
    assert first.reason == second.reason
    assert calls == ([("t", 1)] * 2 if verdict is Verdict.SUCCEEDED else [])


def test_a_new_body_is_decoded_anew() -> None:
    # Given a message decoded ahead, then replaced with another body (as a hook that
    # resolves S3 payloads does)
    message = _message(encode_kwargs({"n": 1}))
    Queue(URL, sqs_client=OFFLINE).dispatcher.predecode([message])
    assert message.decoded_task is not None and message.decoded_task.kwargs == {"n": 1}
    replaced = dataclasses.replace(message, raw={**message.raw, "Body": encode_kwargs({"n": 2})})
    # Then the copy carries no decoded task: processing decodes its own body
    assert replaced.decoded_task is None
    assert replaced != message and dataclasses.replace(message) == message


def test_raw_queues_decode_nothing_ahead() -> None:
    message = _message("anything at all")
    RawQueue(URL, lambda queue_url, sqs_message: None, sqs_client=OFFLINE).dispatcher.predecode(
        [message]
    )
    assert message.decoded_task is None


def test_the_worker_runs_what_its_receivers_decoded(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given tasks and a malformed message on a real queue
    url = make_queue(VisibilityTimeout=30)
    queue = Queue(url, sqs_client)
    seen: list[int] = []
    queue.add_task_handler("t", lambda context, n: seen.append(n))
    for n in range(15):
        queue.add_task("t", n=n)
    attributes = {"TaskName": {"DataType": "String", "StringValue": "t"}}
    sqs_client.send_message(QueueUrl=url, MessageBody="%%%", MessageAttributes=attributes)

    # When a worker drains it
    consumer = Consumer(queue, max_threads=3, max_messages=10)
    try:
        assert wait_until(lambda: len(seen) == 15 and queue.stats().unprocessable == 1, 30)
    finally:
        consumer.stop()

    # Then every task ran once and the malformed one was judged unprocessable (backed off)
    assert sorted(seen) == list(range(15))
    assert queue_counts(sqs_client, url)[0] == 0
