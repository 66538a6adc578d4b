"""The head-to-head's call counter (``bench.peers.server``): what it counts is what was sent.

The benchmark's SQS-calls column rests on it, so it is checked both as a WSGI middleware
(each protocol's way of naming the operation) and as the real server process the
benchmark starts, against calls made by boto3.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from bench.peers.server import CountingApp
from bench.peers.servers import Server, running


def _call(app: CountingApp, **environ: Any) -> None:
    base = {"PATH_INFO": "/", "QUERY_STRING": "", "wsgi.input": io.BytesIO(b"")}
    app({**base, **environ}, lambda *args: None)


def test_each_protocol_names_its_operation() -> None:
    seen: list[bytes] = []

    def upstream(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["wsgi.input"].read())
        return [b""]

    app = CountingApp(upstream)
    # JSON protocol (boto3 >= 1.31): the X-Amz-Target header
    _call(app, HTTP_X_AMZ_TARGET="AmazonSQS.ReceiveMessage")
    # query protocol: Action in the URL, or in the form body (which must reach the server)
    _call(app, QUERY_STRING="Action=DeleteMessage&QueueUrl=x")
    body = b"Action=SendMessage&MessageBody=hi"
    _call(app, CONTENT_LENGTH=str(len(body)), **{"wsgi.input": io.BytesIO(body)})
    _call(app)

    assert dict(app.counts) == {
        "ReceiveMessage": 1,
        "DeleteMessage": 1,
        "SendMessage": 1,
        "unknown": 1,
    }
    assert seen[2] == body


@pytest.fixture(scope="module")
def counted() -> Iterator[Server]:
    """The benchmark's own moto server process, counting."""
    with running("moto") as server:
        yield server


def test_the_server_process_counts_boto3_calls_by_operation(counted: Server) -> None:
    # Given a boto3 client of the counting server
    client = boto3.client(
        "sqs",
        endpoint_url=counted.endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    before = counted.calls()
    # When it makes a known sequence of calls
    url = client.create_queue(QueueName="counted")["QueueUrl"]
    client.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(3)]
    )
    messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    for message in messages:
        client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    # Then the server counted exactly those, and served them
    after = counted.calls()
    added = {op: n - before.get(op, 0) for op, n in after.items() if n != before.get(op, 0)}
    assert added == {
        "CreateQueue": 1,
        "SendMessageBatch": 1,
        "ReceiveMessage": 1,
        "DeleteMessage": len(messages),
    }
    assert len(messages) == 3
