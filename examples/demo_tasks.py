"""The tasks of ``make demo``: one ``Queue`` whose handlers both runtimes run unchanged.

The task names and arguments are those of the sample events in ``events/`` (and of
``examples/lambda_app.py``), so ``events/tasks-mixed.json`` exercises these handlers too.

Run them yourself against ``sqsx local`` (port 9324)::

    sqsx local --queue demo --with-dlq --max-receives 3
    sqsx send demo_tasks:queue send_email --app-dir examples \\
        --kwargs '{"to": "ada@example.com", "subject": "hi"}' --count 100
    sqsx worker demo_tasks:queue --app-dir examples --drain
"""

from __future__ import annotations

import random
import time
from typing import Any

import boto3
from botocore.config import Config

from sqsx import NoRetry, Queue, Retry

QUEUE_URL = "http://127.0.0.1:9324/000000000000/demo"

# Creating a client does no I/O; `sqsx worker --endpoint-url` swaps it for another one.
sqs_client = boto3.client(
    "sqs",
    endpoint_url="http://127.0.0.1:9324",
    region_name="elasticmq",
    aws_access_key_id="x",
    aws_secret_access_key="x",
    config=Config(max_pool_connections=32),
)

# Short backoffs so the demo's retries come back within a second or two.
queue = Queue(url=QUEUE_URL, sqs_client=sqs_client, min_backoff_seconds=1, max_backoff_seconds=2)


def _work() -> None:
    time.sleep(random.uniform(0.001, 0.010))  # a few milliseconds of pretend I/O


def send_email(context: dict[str, Any], to: str, subject: str) -> None:
    """Always succeeds: the message is deleted."""
    _work()


def charge(context: dict[str, Any], order_id: str, amount_cents: int) -> None:
    """A non-positive amount is refused for good (``NoRetry``: deleted). A ``busy-`` order
    finds the payment provider busy on its first delivery (``Retry``: back after the
    queue's backoff) and goes through on the next one."""
    _work()
    if amount_cents <= 0:
        raise NoRetry()
    receive_count = int(context["sqs_message"]["Attributes"]["ApproximateReceiveCount"])
    if order_id.startswith("busy-") and receive_count == 1:
        raise Retry()


def sync_inventory(context: dict[str, Any], sku: str) -> None:
    """Fails every time for sku ``unreachable``: retried until the queue's redrive policy
    moves it to the dead-letter queue."""
    _work()
    if sku == "unreachable":
        raise ConnectionError("inventory service did not answer")


queue.add_task_handler("send_email", send_email)
queue.add_task_handler("charge", charge)
queue.add_task_handler("sync_inventory", sync_inventory)
