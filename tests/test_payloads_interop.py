"""Wire compatibility with AWS's Python Extended Client (the real ``amazon-sqs-extended-client``
package), both directions, against moto's SQS and S3 over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from sqsx.codec import decode_task, encode_kwargs, task_attributes
from sqsx.message import Message
from sqsx.payloads import S3Payloads
from sqsx.pointer import LEGACY_POINTER_CLASS, LEGACY_SIZE_ATTRIBUTE, POINTER_CLASS, SIZE_ATTRIBUTE
from sqsx.sending import OutgoingMessage

REGION = "us-east-1"
BIG = 300_000  # over the Extended Client's fixed 256 KiB threshold


@pytest.fixture(scope="module")
def extended_session() -> Iterator[type]:
    """``SQSExtendedClientSession``, without the global patch of boto3 that importing the
    package makes (it replaces ``boto3.Session`` for the whole process): restored at once."""
    saved = (boto3.Session, boto3.session.Session, boto3.DEFAULT_SESSION)
    try:
        from sqs_extended_client.client import SQSExtendedClientSession
    finally:
        boto3.Session, boto3.session.Session, boto3.DEFAULT_SESSION = saved
    yield SQSExtendedClientSession


def extended_client(
    session_class: type, endpoint_url: str, s3_client: Any, bucket: str, **flags: bool
) -> Any:
    """An Extended Client SQS client for the local server, offloading to ``bucket``."""
    session = session_class(aws_access_key_id="x", aws_secret_access_key="x", region_name=REGION)
    client = session.client("sqs", endpoint_url=endpoint_url)
    client.s3_client = s3_client  # the package's own S3 client would talk to AWS
    client.large_payload_support = bucket
    for name, value in flags.items():
        setattr(client, name, value)
    return client


def receive_one(client: Any, url: str) -> dict[str, Any]:
    messages = client.receive_message(
        QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=2, MaxNumberOfMessages=1
    ).get("Messages", [])
    assert len(messages) == 1, messages
    return dict(messages[0])


def keys(s3_client: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.mark.parametrize("legacy", [False, True], ids=["current", "legacy-1.x"])
def test_we_read_what_the_extended_client_writes(
    extended_session: type,
    endpoint_url: str,
    sqs_client: Any,
    s3_client: Any,
    bucket: str,
    queue_url: str,
    legacy: bool,
) -> None:
    # Given a task body of 400 kB sent by the Extended Client (with our TaskName attribute)
    producer = extended_client(
        extended_session, endpoint_url, s3_client, bucket, use_legacy_attribute=legacy
    )
    body = encode_kwargs({"blob": "x" * BIG})
    producer.send_message(
        QueueUrl=queue_url, MessageBody=body, MessageAttributes=task_attributes("t")
    )
    # When we receive it with a plain boto3 client and resolve it
    raw = receive_one(sqs_client, queue_url)
    kind = json.loads(raw["Body"])[0]
    assert kind == (LEGACY_POINTER_CLASS if legacy else POINTER_CLASS)
    assert (LEGACY_SIZE_ATTRIBUTE if legacy else SIZE_ATTRIBUTE) in raw["MessageAttributes"]
    payloads = S3Payloads(s3_client, bucket)
    resolved = payloads.resolve_message(Message.from_boto3(raw))
    # Then it decodes as the task it was, and its object goes once the message is deleted
    task = decode_task(resolved.raw["Body"], resolved.raw["MessageAttributes"])
    assert (task.name, len(task.kwargs["blob"])) == ("t", BIG)
    assert len(keys(s3_client, bucket)) == 1
    payloads.after_delete(resolved, queue_url)
    assert keys(s3_client, bucket) == []


def test_the_extended_client_reads_what_we_write(
    extended_session: type,
    endpoint_url: str,
    sqs_client: Any,
    s3_client: Any,
    bucket: str,
    queue_url: str,
) -> None:
    # Given a message we offload (threshold 1 KiB) and send with a plain boto3 client
    payloads = S3Payloads(s3_client, bucket, threshold_bytes=1024, key_prefix="sqsx/")
    body = "é" * 2000  # 4,000 UTF-8 bytes: the size attribute counts bytes, not characters
    attributes = {"Kind": {"DataType": "String", "StringValue": "report"}}
    sent = payloads.before_send(OutgoingMessage(body, attributes))
    sqs_client.send_message(QueueUrl=queue_url, **sent.params())
    # When the Extended Client receives it
    consumer = extended_client(
        extended_session, endpoint_url, s3_client, bucket, delete_payload_from_s3=True
    )
    message = receive_one(consumer, queue_url)
    # Then it sees the payload and our other attribute, without the size attribute
    assert message["Body"] == body
    assert message["MessageAttributes"] == {"Kind": {"DataType": "String", "StringValue": "report"}}
    # And its delete removes our object too
    consumer.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    assert keys(s3_client, bucket) == []
