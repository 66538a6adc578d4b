"""A queue for the ``sqsx dlq replay`` tests, loaded in-process as ``dlq_app:queue``.

Its URL and endpoint are placeholders: the tests pass ``--queue-url`` and
``--endpoint-url``. ``RAN`` collects the ``n`` of every handler call.
"""

from __future__ import annotations

from typing import Any

import boto3

from sqsx import Queue
from sqsx.exceptions import NoRetry

RAN: list[int] = []

queue = Queue(
    url="http://127.0.0.1:9/000000000000/unused",
    sqs_client=boto3.client(
        "sqs",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    ),
)


def settle(context: dict[str, Any], n: int) -> None:
    """Succeeds for even ``n``, raises NoRetry for multiples of 5, fails for the rest."""
    RAN.append(n)
    if n % 5 == 0:
        raise NoRetry()
    if n % 2:
        raise RuntimeError(f"odd {n}")


queue.add_task_handler("settle", settle)
