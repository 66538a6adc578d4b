"""The seed README's raw queue script, runnable as is.

It expects an SQS-compatible server on localhost:9324 (ElasticMQ, or sqsx's embedded one:
``sqsx local``), creates the queue ``tests``, sends "My Message" with the attribute
``Attr1``, and hands every message to one handler until Ctrl+C (or SIGTERM) stops it.

    python examples/raw_script.py
"""

from __future__ import annotations

import logging
from typing import Any

import boto3

from sqsx import RawQueue

QUEUE_NAME = "tests"
QUEUE_URL = f"http://localhost:9324/000000000000/{QUEUE_NAME}"


def message_handler(queue_url: str, sqs_message: dict[str, Any]) -> None:
    """Handle any message of the queue: print it."""
    print(f"queue_url={queue_url}, sqs_message={sqs_message}")


def main() -> None:
    """Send one message and consume the queue until interrupted."""
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

    queue = RawQueue(url=QUEUE_URL, message_handler_function=message_handler, sqs_client=sqs_client)
    queue.add_message(
        message_body="My Message",
        message_attributes={"Attr1": {"DataType": "String", "StringValue": "Attr1"}},
    )

    # Runs until Ctrl+C (SIGINT) or SIGTERM, then stops gracefully.
    queue.consume_messages()


if __name__ == "__main__":
    main()
