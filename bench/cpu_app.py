"""The queue of the CPU-bound benchmark (``bench/processes.py``), imported by each worker
process: ``burn(context, ms)`` spins for ``ms`` milliseconds of this thread's CPU time,
then appends its finish time to the file named by ``SQSX_BENCH_RECORD``."""

from __future__ import annotations

import os
import time
from typing import Any

from sqsx import Queue
from sqsx.cli.target import make_client


def make_queue() -> Queue:
    """The queue (URL and endpoint come from ``--queue-url`` / ``--endpoint-url``)."""
    client = make_client("http://127.0.0.1:9")  # replaced by --endpoint-url
    queue = Queue(url="http://127.0.0.1:9/000000000000/unused", sqs_client=client)
    record = os.open(os.environ["SQSX_BENCH_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    def burn(context: dict[str, Any], ms: float) -> None:
        until = time.thread_time() + ms / 1000
        while time.thread_time() < until:  # CPU work: holds the GIL
            pass
        os.write(record, f"{time.time():.6f}\n".encode())

    queue.add_task_handler("burn", burn)
    return queue
