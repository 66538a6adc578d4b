"""What SQS refuses is refused before sending, in every send path, with sqsx's own error.

Local servers accept an 11th attribute and characters SQS refuses, so these rules are
asserted as AWS documents them (docs.aws.amazon.com/AWSSimpleQueueService/latest/
SQSDeveloperGuide/sqs-message-metadata.html and .../APIReference/API_SendMessage.html), and
the sends that pass them are proven against the server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from conftest import CallCounter

from sqsx import Queue, RawMessage, RawQueue, SqsxError, TaskMessage
from sqsx.attributes import MAX_ATTRIBUTES, check_message
from sqsx.exceptions import InvalidMessageError
from sqsx.hooks import Hook
from sqsx.sending import OutgoingMessage


def _string(value: str = "v") -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def _attributes(count: int) -> dict[str, dict[str, str]]:
    return {f"attr{i}": _string(str(i)) for i in range(count)}


@pytest.mark.parametrize(
    ("body", "attributes", "says"),
    [
        pytest.param("b", _attributes(11), "at most 10 message attributes", id="eleven"),
        pytest.param("b", {"AWS.trace": _string()}, "reserves", id="aws-prefix"),
        pytest.param("b", {"amazon.x": _string()}, "reserves", id="amazon-prefix-any-case"),
        pytest.param("b", {"a" * 257: _string()}, "257 characters", id="name-too-long"),
        pytest.param("b", {"a b": _string()}, "a character other than", id="space-in-name"),
        pytest.param("b", {"é": _string()}, "a character other than", id="non-ascii-name"),
        pytest.param("b", {".a": _string()}, "period", id="leading-period"),
        pytest.param("b", {"a.": _string()}, "period", id="trailing-period"),
        pytest.param("b", {"a..b": _string()}, "period", id="two-periods"),
        pytest.param("b", {"": _string()}, "non-empty string", id="empty-name"),
        pytest.param("b", {"a": {"DataType": "Text", "StringValue": "v"}}, "DataType", id="type"),
        pytest.param("b", {"a": {"DataType": "String.", "StringValue": "v"}}, "label", id="dot"),
        pytest.param("b", {"a": {"DataType": "String"}}, "non-empty StringValue", id="no-value"),
        pytest.param(
            "b", {"a": {"DataType": "Binary", "StringValue": "v"}}, "BinaryValue", id="bin"
        ),
        pytest.param("b", {"a": _string("x\x00y")}, "U+0000 at position 1", id="nul-in-value"),
        pytest.param("b", {"a": _string("\ud800")}, "U+D800", id="lone-surrogate-value"),
        pytest.param("b", {"a": _string("\ufffe")}, "U+FFFE", id="non-character"),
        pytest.param("x\x1by", None, "the message body has a character", id="escape-in-body"),
        pytest.param("", None, "empty", id="empty-body"),
    ],
)
def test_what_sqs_refuses_is_refused_with_the_rule(
    body: str, attributes: dict[str, Any] | None, says: str
) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        check_message(body, attributes)
    assert says in str(caught.value)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, SqsxError)


@pytest.mark.parametrize(
    ("body", "attributes"),
    [
        pytest.param("tab\tnewline\ncr\r", _attributes(MAX_ATTRIBUTES), id="ten-and-whitespace"),
        pytest.param("emoji 😀 and ümlaut", {"a-b_c.d": _string("😀")}, id="unicode"),
        pytest.param("b", {"n": {"DataType": "Number.float", "StringValue": "1.5"}}, id="label"),
        pytest.param("b", {"bin": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}}, id="bin"),
        pytest.param("b", {"AWSx": _string(), "Amazonia": _string()}, id="prefix-lookalikes"),
    ],
)
def test_what_sqs_accepts_passes(body: str, attributes: dict[str, Any]) -> None:
    check_message(body, attributes)


def test_ten_attributes_counting_task_name_reach_the_server(
    sqs_client: Any, queue_url: str
) -> None:
    # Given a task with nine attributes of its own (TaskName makes ten)
    queue = Queue(url=queue_url, sqs_client=sqs_client)

    # When it is sent
    queue.send_task("work", {"n": 1}, attributes=_attributes(9))

    # Then the server delivers it with all ten
    messages = sqs_client.receive_message(
        QueueUrl=queue_url, MessageAttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"]
    assert len(messages[0]["MessageAttributes"]) == 10


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(
            lambda q, r: q.send_task("work", {}, attributes=_attributes(10)), id="send_task"
        ),
        pytest.param(lambda q, r: q.add_task("bad\x00name"), id="add_task-bad-task-name"),
        pytest.param(
            lambda q, r: q.send_tasks(
                [TaskMessage("work"), TaskMessage("work", attributes={"AWS.x": _string()})]
            ),
            id="send_tasks",
        ),
        pytest.param(lambda q, r: r.add_message("bell\x07"), id="add_message-body"),
        pytest.param(
            lambda q, r: r.add_message("b", {"Amazon.x": _string()}), id="add_message-name"
        ),
        pytest.param(
            lambda q, r: r.send_message("b", attributes=_attributes(11)), id="send_message"
        ),
        pytest.param(
            lambda q, r: r.send_messages(["fine", RawMessage("b", {"a b": _string()})]),
            id="send_messages",
        ),
    ],
)
def test_every_send_path_refuses_before_any_call(
    send: Callable[[Queue, RawQueue], object],
    sqs_client: Any,
    make_queue: Callable[..., str],
    call_counter: CallCounter,
) -> None:
    # Given a task queue and a raw queue on the server
    url = make_queue("refuse")
    queue = Queue(url=url, sqs_client=sqs_client)
    raw = RawQueue(url=url, message_handler_function=lambda *_: None, sqs_client=sqs_client)
    call_counter.counts.clear()

    # When a message SQS would refuse is sent
    with pytest.raises(InvalidMessageError):
        send(queue, raw)

    # Then no SQS call was made (a batch sends nothing, not even its valid entries)
    assert sum(call_counter.counts.values()) == 0


class AddsAttribute(Hook):
    """A ``before_send`` hook that adds one attribute, as tracing does (``traceparent``)."""

    def before_send(self, outgoing: OutgoingMessage) -> OutgoingMessage:
        extra = {"traceparent": _string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}
        return dataclasses.replace(outgoing, attributes={**outgoing.attributes, **extra})


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(lambda q: q.send_task("work", {}, attributes=_attributes(9)), id="one"),
        pytest.param(
            lambda q: q.send_tasks([TaskMessage("work", attributes=_attributes(9))]), id="batch"
        ),
    ],
)
def test_attributes_a_hook_adds_are_counted(
    send: Callable[[Queue], object],
    sqs_client: Any,
    make_queue: Callable[..., str],
    call_counter: CallCounter,
) -> None:
    # Given a task with TaskName and 9 attributes of its own, and a hook adding an 11th
    queue = Queue(url=make_queue("hooked"), sqs_client=sqs_client, hooks=[AddsAttribute()])
    call_counter.counts.clear()

    # When it is sent, then it is refused before any call
    with pytest.raises(InvalidMessageError, match="at most 10 message attributes, got 11"):
        send(queue)
    assert sum(call_counter.counts.values()) == 0

    # And with one attribute fewer it reaches the server with all ten
    queue.send_task("work", {}, attributes=_attributes(8))
    message = sqs_client.receive_message(
        QueueUrl=queue.url, MessageAttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"][0]
    assert "traceparent" in message["MessageAttributes"]
    assert len(message["MessageAttributes"]) == 10
