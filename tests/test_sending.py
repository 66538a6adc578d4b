"""Sending options, batch sending and delays, against the local server."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from conftest import CallCounter, fail_first_call, queue_counts, wait_until
from servers import deviates_on

from sqsx import Queue, RawQueue
from sqsx.sending import OutgoingMessage, RawMessage, TaskMessage, send_batch


def _receive_all(client: Any, url: str, expected: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    for _ in range(20):
        response = client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            WaitTimeSeconds=0,
        )
        got.extend(response.get("Messages", []))
        if len(got) >= expected:
            break
    return got


def test_send_task_keeps_options_apart_from_kwargs(sqs_client: Any, queue_url: str) -> None:
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    # A task argument may be called "delay_seconds": it is an argument, not an option
    queue.send_task(
        "t",
        {"delay_seconds": 5, "group_id": "x"},
        attributes={"Tenant": {"DataType": "String", "StringValue": "acme"}},
    )
    (message,) = _receive_all(sqs_client, queue_url, 1)
    body = json.loads(base64.urlsafe_b64decode(message["Body"]))
    assert body == {"kwargs": {"delay_seconds": 5, "group_id": "x"}}
    assert message["MessageAttributes"]["TaskName"]["StringValue"] == "t"
    assert message["MessageAttributes"]["Tenant"]["StringValue"] == "acme"


def test_a_delayed_task_is_not_received_before_its_delay(sqs_client: Any, queue_url: str) -> None:
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    queue.send_task("t", {"n": 1}, delay_seconds=2)
    assert queue_counts(sqs_client, queue_url) == (0, 0, 1)
    assert _receive_all(sqs_client, queue_url, 1) == []
    assert wait_until(lambda: queue_counts(sqs_client, queue_url)[0] == 1, timeout=6)


@pytest.mark.parametrize(
    ("fifo", "options", "message"),
    [
        pytest.param(False, {"delay_seconds": 901}, "between 0 and 900", id="delay-over-900"),
        pytest.param(False, {"delay_seconds": -1}, "between 0 and 900", id="negative-delay"),
        pytest.param(True, {"delay_seconds": 5, "group_id": "g"}, "FIFO", id="delay-on-fifo"),
        pytest.param(True, {}, "group_id", id="fifo-without-group"),
        pytest.param(False, {"deduplication_id": "d"}, "FIFO queues only", id="dedup-on-standard"),
    ],
)
def test_options_sqs_would_refuse_raise_first(
    fifo: bool, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        OutgoingMessage.build("body", None, fifo=fifo, **options)


def test_task_name_attribute_is_reserved(sqs_client: Any, queue_url: str) -> None:
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    with pytest.raises(ValueError, match="reserved"):
        queue.send_task("t", attributes={"TaskName": {"DataType": "String", "StringValue": "x"}})


def test_batch_of_25_with_one_oversize_entry(
    sqs_client: Any, queue_url: str, call_counter: CallCounter
) -> None:
    # Given 25 tasks, the 8th of which is over the queue's 64 KiB limit
    queue = Queue(url=queue_url, sqs_client=sqs_client, max_message_bytes=65_536)
    tasks = [TaskMessage("t", {"n": n}) for n in range(25)]
    tasks[7] = TaskMessage("t", {"n": 7, "blob": "x" * 70_000})

    # When they are sent as a batch
    results = queue.send_tasks(tasks)

    # Then 24 went out in three requests, and the oversize one is reported, not dropped
    assert [r.index for r in results] == list(range(25))
    assert [r.ok for r in results].count(True) == 24
    assert results[7].error == "MessageTooLarge" and results[7].message_id is None
    assert call_counter.counts["SendMessageBatch"] == 3
    assert call_counter.counts["SendMessage"] == 0
    assert queue_counts(sqs_client, queue_url)[0] == 24


def test_batches_respect_one_mebibyte_per_request(
    sqs_client: Any, queue_url: str, call_counter: CallCounter
) -> None:
    # Given five raw messages of 400 KB: at most two fit in one 1 MiB request
    queue = RawQueue(url=queue_url, message_handler_function=print, sqs_client=sqs_client)
    results = queue.send_messages(["y" * 400_000 for _ in range(5)])
    assert all(r.ok for r in results)
    assert call_counter.counts["SendMessageBatch"] == 3


def test_fifo_batch_carries_group_and_deduplication_ids(sqs_client: Any, make_queue: Any) -> None:
    url = make_queue("fifo", fifo=True)
    queue = RawQueue(url=url, message_handler_function=print, sqs_client=sqs_client)
    results = queue.send_messages(
        [RawMessage(f"m{n}", group_id="g1", deduplication_id=f"d{n}") for n in range(3)]
        + [RawMessage("m0-again", group_id="g1", deduplication_id="d0")]
    )
    assert all(r.ok for r in results)
    assert all(r.sequence_number for r in results)
    # The repeated deduplication id was accepted but not enqueued twice
    messages = _receive_all(sqs_client, url, 3)
    assert [m["Body"] for m in messages] == ["m0", "m1", "m2"]
    assert messages[0]["Attributes"]["MessageGroupId"] == "g1"


# SendMessageBatchRequestEntry: "DelaySeconds ... Valid values: 0 to 900"
# (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatchRequestEntry.html);
# an out-of-range value is InvalidParameterValue, 400
# (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/CommonErrors.html).
@deviates_on("localstack", reason="accepts DelaySeconds=901 in a SendMessageBatch entry")
def test_entries_sqs_refuses_are_reported_per_entry(
    sqs_client: Any, queue_url: str, call_counter: CallCounter
) -> None:
    # Given a batch whose second entry SQS refuses (a delay our own check would have caught)
    refused = OutgoingMessage("bad", {}, delay_seconds=901)
    results = send_batch(sqs_client, queue_url, [OutgoingMessage("ok"), refused])
    # Then the refusal is reported for that entry alone, at once (a sender fault)
    assert results[0].ok
    assert not results[1].ok and results[1].error == "InvalidParameterValue"
    assert call_counter.counts["SendMessageBatch"] == 1
    assert queue_counts(sqs_client, queue_url)[0] == 1


def test_a_refused_call_is_reported_for_every_entry_without_retrying(
    sqs_client: Any, queue_url: str, call_counter: CallCounter
) -> None:
    # Given a SendMessageBatch call that SQS refuses as a whole with a 400
    fail_first_call(sqs_client, "SendMessageBatch", "InvalidParameterValue", 400)
    results = send_batch(sqs_client, queue_url, [OutgoingMessage("a"), OutgoingMessage("b")])
    # Then every entry is reported with the code, and the call is not retried
    assert [r.error for r in results] == ["InvalidParameterValue", "InvalidParameterValue"]
    assert call_counter.counts["SendMessageBatch"] == 1
    assert queue_counts(sqs_client, queue_url)[0] == 0


def test_an_unknown_attribute_type_is_refused_and_never_retried(
    sqs_client: Any, queue_url: str, call_counter: CallCounter
) -> None:
    # Given an entry whose attribute type is neither String, Number nor Binary (AWS: a
    # DataType must start with one of them, MessageAttributeValue in the API reference,
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_MessageAttributeValue.html)
    bad = {"N": {"DataType": "Foo", "StringValue": "1"}}
    results = send_batch(sqs_client, queue_url, [OutgoingMessage("a"), OutgoingMessage("b", bad)])
    # Then it is refused as an invalid parameter, in one call. moto refuses the whole call
    # (InvalidParameterValue), LocalStack the entry alone (InvalidParameterValueException):
    # either way nothing is retried and every entry either was sent or is reported.
    assert not results[1].ok and str(results[1].error).startswith("InvalidParameterValue")
    assert results[0].ok or results[0].error == results[1].error
    assert call_counter.counts["SendMessageBatch"] == 1
    assert queue_counts(sqs_client, queue_url)[0] == sum(r.ok for r in results)


def test_a_throttled_batch_is_retried_and_nothing_is_lost(sqs_client: Any, queue_url: str) -> None:
    # Given a client whose first SendMessageBatch call is throttled
    calls = fail_first_call(sqs_client, "SendMessageBatch", "ThrottlingException", 400)
    queue = Queue(url=queue_url, sqs_client=sqs_client)

    # When twelve tasks are sent
    results = queue.send_tasks([TaskMessage("t", {"n": n}) for n in range(12)])

    # Then the throttled request was sent again and every task arrived once
    assert all(r.ok for r in results)
    assert len(calls) == 3  # the throttled one, its retry, and the second request
    assert queue_counts(sqs_client, queue_url)[0] == 12


def test_a_throttled_fifo_batch_keeps_each_group_in_order(sqs_client: Any, make_queue: Any) -> None:
    # Given a FIFO queue and a client whose first SendMessageBatch call is throttled
    url = make_queue("fifo", fifo=True, ContentBasedDeduplication="true")
    fail_first_call(sqs_client, "SendMessageBatch", "ThrottlingException", 400)
    queue = Queue(url=url, sqs_client=sqs_client)

    # When 25 tasks of one group go out in three requests, the first of which fails
    results = queue.send_tasks(TaskMessage("t", {"n": n}, group_id="g") for n in range(25))
    assert all(r.ok for r in results)

    # Then the later requests waited for the first: the group arrives in order (received and
    # deleted ten at a time, as SQS hands out no more of a group while some are in flight)
    order: list[int] = []
    for _ in range(10):
        batch = _receive_all(sqs_client, url, 10)
        order += [json.loads(base64.urlsafe_b64decode(m["Body"]))["kwargs"]["n"] for m in batch]
        for m in batch:
            sqs_client.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if len(order) >= 25:
            break
    assert order == list(range(25))
