"""Fixtures: a real SQS-compatible server (moto) on 127.0.0.1, and boto3 clients for it."""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from sqsx.local import LocalSqs

REGION = "us-east-1"


@pytest.fixture(scope="session")
def local_sqs() -> Iterator[LocalSqs]:
    """moto's SQS server for the whole session, on a free port of 127.0.0.1."""
    server = LocalSqs(port=0).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def endpoint_url(local_sqs: LocalSqs) -> str:
    return local_sqs.endpoint_url


def make_client(endpoint_url: str, **config: Any) -> Any:
    """A boto3 SQS client for the local server."""
    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(max_pool_connections=50, **config),
    )


@pytest.fixture
def sqs_client(endpoint_url: str) -> Any:
    return make_client(endpoint_url)


@pytest.fixture
def make_queue(sqs_client: Any) -> Callable[..., str]:
    """Create a queue with a unique name; keyword arguments are queue attributes."""

    def create(prefix: str = "q", fifo: bool = False, **attributes: Any) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}" + (".fifo" if fifo else "")
        attrs = {k: str(v) for k, v in attributes.items()}
        if fifo:
            attrs["FifoQueue"] = "true"
        return str(sqs_client.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"])

    return create


@pytest.fixture
def queue_url(make_queue: Callable[..., str]) -> str:
    return make_queue()


class CallCounter:
    """Counts SQS API calls made by one client, by operation name (botocore event hook)."""

    def __init__(self, client: Any) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        client.meta.events.register("before-call.sqs.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.counts[model.name] += 1


@pytest.fixture
def call_counter(sqs_client: Any) -> CallCounter:
    return CallCounter(sqs_client)


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05
) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def queue_counts(client: Any, url: str) -> tuple[int, int, int]:
    """(visible, in flight, delayed) for ``url``."""
    attrs = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return (
        int(attrs["ApproximateNumberOfMessages"]),
        int(attrs["ApproximateNumberOfMessagesNotVisible"]),
        int(attrs["ApproximateNumberOfMessagesDelayed"]),
    )


class Consumer:
    """Runs ``queue.consume_messages`` in a thread; ``stop()`` asks it to exit and joins."""

    def __init__(self, queue: Any, **options: Any) -> None:
        options.setdefault("enable_signal_to_exit_gracefully", False)
        options.setdefault("wait_seconds", 0)
        options.setdefault("polling_wait_seconds", 1)
        self.queue = queue
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(options,), daemon=True)
        self.thread.start()

    def _run(self, options: dict[str, Any]) -> None:
        try:
            self.queue.consume_messages(**options)
        except BaseException as err:
            self.error = err

    def stop(self, timeout: float = 15.0) -> None:
        self.queue.exit_gracefully()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "consumer did not stop in time"
        if self.error is not None:
            raise self.error
