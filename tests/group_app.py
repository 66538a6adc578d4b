"""Two queues for the CLI tests of ``sqsx worker A B`` (``--app-dir tests``).

Their URLs come from ``SQSX_TEST_ORDERS_URL`` and ``SQSX_TEST_EMAILS_URL``; every test
passes ``--endpoint-url``. Handlers append ``QUEUE N`` to the file named by
``SQSX_TEST_RECORD``, one line per call.
"""

from __future__ import annotations

import os
import time
from typing import Any

import boto3
from cli_app import _record  # the same record file, one line per call

from sqsx import Queue

sqs_client = boto3.client(
    "sqs",
    endpoint_url="http://127.0.0.1:9",  # replaced: the tests pass --endpoint-url
    region_name="us-east-1",
    aws_access_key_id="x",
    aws_secret_access_key="x",
)


def _make(name: str) -> Queue:
    queue = Queue(
        url=os.environ[f"SQSX_TEST_{name.upper()}_URL"],
        sqs_client=sqs_client,
        min_backoff_seconds=0,
        max_backoff_seconds=1,
    )

    def record(context: dict[str, Any], n: int, seconds: float = 0.0) -> None:
        time.sleep(seconds)
        _record(f"{name} {n}")

    queue.add_task_handler("record", record)
    return queue


orders = _make("orders")
emails = _make("emails")
