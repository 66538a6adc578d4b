"""Queues for the CLI tests, imported by ``sqsx`` subprocesses (``--app-dir tests``).

The URL and endpoint below are never used: every test passes ``--queue-url`` and
``--endpoint-url`` (or ``SQSX_QUEUE_URL`` / ``SQSX_ENDPOINT_URL``). Handlers append what
they run to the file named by ``SQSX_TEST_RECORD``, one line per call.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any

import boto3

from sqsx import Queue, RawQueue

_UNUSED = "http://127.0.0.1:9"

sqs_client = boto3.client(
    "sqs",
    endpoint_url=_UNUSED,
    region_name="us-east-1",
    aws_access_key_id="x",
    aws_secret_access_key="x",
)
queue = Queue(
    url=f"{_UNUSED}/000000000000/unused",
    sqs_client=sqs_client,
    min_backoff_seconds=0,
    max_backoff_seconds=1,
)


def _record(line: str) -> None:
    descriptor = os.open(os.environ["SQSX_TEST_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, f"{line}\n".encode())
    finally:
        os.close(descriptor)


def record(context: dict[str, Any], n: int, seconds: float = 0.0) -> None:
    """Takes ``seconds``, then records ``n``."""
    time.sleep(seconds)
    _record(str(n))


def block(context: dict[str, Any]) -> None:
    """Records ``started``, then runs for a minute (a handler a forced stop abandons)."""
    _record("started")
    time.sleep(60)


async def nap(context: dict[str, Any], n: int, seconds: float) -> None:
    """Records ``+n`` when it starts awaiting and ``-n`` when it is done (async def)."""
    _record(f"+{n}")
    await asyncio.sleep(seconds)
    _record(f"-{n}")


queue.add_task_handler("record", record)
queue.add_task_handler("block", block)
queue.add_task_handler("nap", nap)


def make_queue() -> Queue:
    """The factory form of ``MODULE:ATTR``."""
    return queue


def broken_factory() -> Queue:
    raise RuntimeError("no configuration found")


def _on_message(queue_url: str, sqs_message: Mapping[str, Any]) -> None:
    _record(str(sqs_message["Body"]))


raw = RawQueue(
    url=f"{_UNUSED}/000000000000/raw", message_handler_function=_on_message, sqs_client=sqs_client
)

not_a_queue = 42


def where(context: dict[str, Any], n: int, seconds: float = 0.0) -> None:
    """Takes ``seconds``, then records ``n`` and the process that ran it."""
    time.sleep(seconds)
    _record(f"{n} {os.getpid()}")


queue.add_task_handler("where", where)

# No ``async def`` handler: a worker of one thread has one receiver. (With an async handler
# registered, as on ``queue``, it has receivers for ``--max-async`` coroutines too, and
# room for as many more messages.)
threads_only = Queue(url=f"{_UNUSED}/000000000000/threads-only", sqs_client=sqs_client)
threads_only.add_task_handler("block", block)
