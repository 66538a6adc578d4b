"""What a real boto3 call costs the caller's CPU, which the simulated SQS does not charge.

Measured against moto's server in this process: the calling thread's CPU time
(``time.thread_time``) around ReceiveMessage (ten messages, every attribute) and
DeleteMessageBatch (ten entries) covers boto3's own work (validating, serialising,
signing, HTTP, parsing) and none of the server's, which runs in its own thread.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from sqsx.codec import encode_kwargs, task_attributes


@dataclass(frozen=True)
class Boto3Cost:
    """Median client CPU per call, in milliseconds."""

    receive_ms: float
    delete_ms: float

    @property
    def per_call_ms(self) -> float:
        return (self.receive_ms + self.delete_ms) / 2

    def as_dict(self) -> dict[str, Any]:
        return {"receive_ms": self.receive_ms, "delete_ms": self.delete_ms}


#: What sqsx's engine asks for on every ReceiveMessage.
ASK_ALL: dict[str, Any] = {"MessageSystemAttributeNames": ["All"], "MessageAttributeNames": ["All"]}


def measure(
    rounds: int = 60,
    *,
    config: dict[str, Any] | None = None,
    receive: dict[str, Any] | None = None,
    endpoint_url: str | None = None,
) -> Boto3Cost:
    """Median caller CPU of ``rounds`` receives of ten and deletes of ten, with a client
    made with ``config`` (botocore ``Config`` options) receiving with ``receive``
    (default: every attribute, as sqsx asks), against ``endpoint_url`` or a moto server
    started for the purpose."""
    from sqsx.local import LocalSqs

    if endpoint_url is None:
        with LocalSqs(port=0) as server:
            return measure(rounds, config=config, receive=receive, endpoint_url=server.endpoint_url)
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(**({"retries": {"max_attempts": 0}} if config is None else config)),
    )
    url = client.create_queue(QueueName="boto3-cost")["QueueUrl"]
    entries: list[Any] = [
        {
            "Id": str(i),
            "MessageBody": encode_kwargs({"n": i}),
            "MessageAttributes": task_attributes("t"),
        }
        for i in range(10)
    ]
    receives, deletes = [], []
    for round_ in range(rounds + 5):
        client.send_message_batch(QueueUrl=url, Entries=entries)
        started = time.thread_time()
        messages = client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, **(ASK_ALL if receive is None else receive)
        ).get("Messages", [])
        received = time.thread_time()
        client.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
        deleted = time.thread_time()
        if round_ >= 5 and len(messages) == 10:  # the first rounds warm caches up
            receives.append(received - started)
            deletes.append(deleted - received)
    return Boto3Cost(statistics.median(receives) * 1000, statistics.median(deletes) * 1000)
