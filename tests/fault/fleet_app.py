"""The queue ``sqsx worker --processes N`` runs in the fault suite (``--app-dir tests/fault``).

``work(context, task_id, seconds=0.0)`` records ``start`` and ``finish`` lines in the file
named by ``SQSX_TEST_RECORD``, in the ledger format of ``faultkit`` (one ``os.write`` each,
so a SIGKILL never leaves half a line). The URL and endpoint come from ``--queue-url`` and
``--endpoint-url``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from worker import _Recorder

from sqsx import Queue
from sqsx.cli.target import make_client


def make_queue() -> Queue:
    """A queue with the ``work`` handler (called in each worker process)."""
    client = make_client("http://127.0.0.1:9")  # replaced by --endpoint-url
    queue = Queue(
        url="http://127.0.0.1:9/000000000000/unused",
        sqs_client=client,
        min_backoff_seconds=1,
        max_backoff_seconds=5,
    )
    recorder = _Recorder(os.environ["SQSX_TEST_RECORD"])

    def work(context: dict[str, Any], task_id: str, seconds: float = 0.0) -> None:
        count = context["sqs_message"]["Attributes"]["ApproximateReceiveCount"]
        recorder.write("start", task_id, count)
        time.sleep(seconds)  # the task's work
        recorder.write("finish", task_id, count)

    queue.add_task_handler("work", work)
    return queue
