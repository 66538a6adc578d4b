"""``sqsx local`` (moto's server) under concurrent receives: no message returned twice.

moto serves each request on its own thread and scans a queue's messages without a lock.
The test widens that race window (a short sleep between moto's "is it visible?" check and
its marking the message received) so that, without sqsx's serialization, two receivers get
the same message in almost every run; with it, SQS's documented behaviour holds: a
received message is not returned to another consumer within its visibility timeout
(https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from conftest import make_client
from moto.sqs import models

from sqsx.local import LocalSqs

MESSAGES = 60


def _queue(client: Any) -> str:
    name = f"race-{uuid.uuid4().hex[:12]}"
    attributes = {"VisibilityTimeout": "60"}
    return str(client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


def _send(client: Any, url: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start:][:10])]
        assert not client.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")


def _slowed(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    original = getattr(models.Message, method)

    def slow(self: Any, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.001)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(models.Message, method, slow)


def test_concurrent_receives_never_return_a_message_twice(
    local_sqs: LocalSqs, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a queue of 60 messages with a 60 s visibility timeout, and moto slowed between
    # its "is it visible?" check and its marking the message received
    client = make_client(local_sqs.endpoint_url)
    url = _queue(client)
    _send(client, url, [f"m{i}" for i in range(MESSAGES)])
    _slowed(monkeypatch, "mark_received")
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    # When six receivers receive until the queue gives nothing more
    def receive() -> None:
        receiver = make_client(local_sqs.endpoint_url)
        for _ in range(MESSAGES):  # bounded: at least one message per call until empty
            got = receiver.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            bodies = [m["Body"] for m in got.get("Messages", [])]
            if not bodies:
                return
            with lock:
                seen.update(bodies)

    threads = [threading.Thread(target=receive) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    # Then every message was returned exactly once
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(seen) == sorted(f"m{i}" for i in range(MESSAGES))
    assert [body for body, n in seen.items() if n > 1] == []
