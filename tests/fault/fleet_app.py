"""The queue ``sqsx worker --processes N`` runs in the fault suite (``--app-dir tests/fault``).

``work(context, task_id, seconds=0.0)`` is ``worker.py``'s: it records ``start`` and
``finish`` lines in the file named by ``SQSX_TEST_RECORD``, in the ledger format of
``faultkit``. The URL and endpoint come from ``--queue-url`` and
``--endpoint-url``.
"""

from __future__ import annotations

import os

from worker import add_work_handler

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
    add_work_handler(queue, os.environ["SQSX_TEST_RECORD"])
    return queue
