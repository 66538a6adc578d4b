"""Wire compatibility with AWS's Python Extended Client (the real ``amazon-sqs-extended-client``
package), both directions, against moto's SQS and S3 over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Stack

from sqsx.codec import decode_task, encode_kwargs, task_attributes
from sqsx.message import Message
from sqsx.payloads import S3Payloads
from sqsx.pointer import LEGACY_POINTER_CLASS, LEGACY_SIZE_ATTRIBUTE, POINTER_CLASS, SIZE_ATTRIBUTE
from sqsx.sending import OutgoingMessage

BIG = 300_000  # over the Extended Client's fixed 256 KiB threshold


def receive_one(client: Any, url: str) -> dict[str, Any]:
    messages = client.receive_message(
        QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=2, MaxNumberOfMessages=1
    ).get("Messages", [])
    assert len(messages) == 1, messages
    return dict(messages[0])


@pytest.mark.parametrize("legacy", [False, True], ids=["current", "legacy-1.x"])
def test_we_read_what_the_extended_client_writes(stack: Stack, legacy: bool) -> None:
    # Given a task body of 400 kB sent by the Extended Client (with our TaskName attribute)
    producer = stack.extended(use_legacy_attribute=legacy)
    body = encode_kwargs({"blob": "x" * BIG})
    producer.send_message(
        QueueUrl=stack.url, MessageBody=body, MessageAttributes=task_attributes("t")
    )
    # When we receive it with a plain boto3 client and resolve it
    raw = receive_one(stack.sqs, stack.url)
    kind = json.loads(raw["Body"])[0]
    assert kind == (LEGACY_POINTER_CLASS if legacy else POINTER_CLASS)
    assert (LEGACY_SIZE_ATTRIBUTE if legacy else SIZE_ATTRIBUTE) in raw["MessageAttributes"]
    payloads = S3Payloads(stack.s3, stack.bucket)
    resolved = payloads.resolve_message(Message.from_boto3(raw))
    # Then it decodes as the task it was, and its object goes once the message is deleted
    task = decode_task(resolved.raw["Body"], resolved.raw["MessageAttributes"])
    assert (task.name, len(task.kwargs["blob"])) == ("t", BIG)
    assert len(stack.keys()) == 1
    payloads.after_delete(resolved, stack.url)
    assert stack.keys() == []


def test_the_extended_client_reads_what_we_write(stack: Stack) -> None:
    # Given a message we offload (threshold 1 KiB) and send with a plain boto3 client
    payloads = S3Payloads(stack.s3, stack.bucket, threshold_bytes=1024, key_prefix="sqsx/")
    body = "é" * 2000  # 4,000 UTF-8 bytes: the size attribute counts bytes, not characters
    attributes = {"Kind": {"DataType": "String", "StringValue": "report"}}
    sent = payloads.before_send(OutgoingMessage(body, attributes))
    stack.sqs.send_message(QueueUrl=stack.url, **sent.params())
    # When the Extended Client receives it
    consumer = stack.extended(delete_payload_from_s3=True)
    message = receive_one(consumer, stack.url)
    # Then it sees the payload and our other attribute, without the size attribute
    assert message["Body"] == body
    assert message["MessageAttributes"] == attributes
    # And its delete removes our object too
    consumer.delete_message(QueueUrl=stack.url, ReceiptHandle=message["ReceiptHandle"])
    assert stack.keys() == []
