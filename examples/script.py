"""The seed README's task queue script, runnable as is.

It expects an SQS-compatible server on localhost:9324 (ElasticMQ, or sqsx's embedded one:
``sqsx local``), creates the queue ``tests``, sends the task ``my_task`` with a=1, b=2,
c=3, and consumes until Ctrl+C (or SIGTERM) stops it gracefully.

    python examples/script.py
"""

from __future__ import annotations

import logging
from typing import Any

import boto3

from sqsx import Queue

QUEUE_NAME = "tests"
QUEUE_URL = f"http://localhost:9324/000000000000/{QUEUE_NAME}"


def task_handler(context: dict[str, Any], a: int, b: int, c: int) -> None:
    """Handle ``my_task``: print what it was given."""
    print(f"context={context}, a={a}, b={b}, c={c}")


def main() -> None:
    """Send one task and consume the queue until interrupted."""
    logging.basicConfig(level=logging.DEBUG)
    logging.getLogger("botocore").setLevel(logging.CRITICAL)
    logging.getLogger("urllib3").setLevel(logging.CRITICAL)

    sqs_client = boto3.client(
        "sqs",
        endpoint_url="http://localhost:9324",
        region_name="elasticmq",
        aws_secret_access_key="x",
        aws_access_key_id="x",
        use_ssl=False,
    )
    sqs_client.create_queue(QueueName=QUEUE_NAME)

    queue = Queue(url=QUEUE_URL, sqs_client=sqs_client)
    queue.add_task("my_task", a=1, b=2, c=3)
    queue.add_task_handler("my_task", task_handler)

    # Runs until Ctrl+C (SIGINT) or SIGTERM, then stops gracefully.
    queue.consume_messages()


if __name__ == "__main__":
    main()
