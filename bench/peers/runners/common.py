"""What every contender's runner shares: arguments, the task body, the record it writes.

Runners are scripts run by ``bench.peers.compare`` with the python of the contender's own
venv, so this module uses the standard library only (and boto3, which every contender
brings). A runner has two modes:

- ``fill``: put ``--count`` tasks numbered 0..count-1 on ``--queue-url`` in the
  contender's own wire format;
- ``consume``: run the contender's worker with ``--threads`` threads until every task has
  been handled once (or ``--timeout`` seconds pass), stop it the way its docs say, and
  write a JSON record to ``--out``.

The task does nothing (``--handler-ms 0``) or sleeps ``--handler-ms`` milliseconds, then
reports its number to ``Record.handled``, which notes the wall clock and the process's CPU
time of the first and of the last distinct task. The steady-state figures use that window,
so imports, worker start-up and shutdown, which differ by design, are left out; the whole
run's CPU is in the record too.
"""

from __future__ import annotations

import argparse
import collections
import json
import threading
import time
from pathlib import Path
from typing import Any

REGION = "us-east-1"
KEY = "bench"  # local servers do not check credentials


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["fill", "consume"])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--handler-ms", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out", type=Path)
    return parser.parse_args(argv)


def client(endpoint: str, **config: Any) -> Any:
    """A plain boto3 SQS client for the local server (the contenders' defaults otherwise)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY,
        aws_secret_access_key=KEY,
        config=Config(max_pool_connections=50, **config),
    )


class Record:
    """Tasks handled, with the window between the first and the last distinct one."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sleep = args.handler_ms / 1000
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._counts: collections.Counter[int] = collections.Counter()
        self._first: tuple[float, float] | None = None
        self._last: tuple[float, float] | None = None
        self._ready = (time.perf_counter(), time.process_time())
        self._stopped: tuple[float, float] | None = None

    def ready(self) -> None:
        """The worker is about to start consuming."""
        self._ready = (time.perf_counter(), time.process_time())

    def task(self, n: int) -> None:
        """The task body: sleep ``--handler-ms``, then count task ``n``."""
        if self.sleep:
            time.sleep(self.sleep)
        self.handled(n)

    def handled(self, n: int) -> None:
        mark = (time.perf_counter(), time.process_time())
        with self._lock:
            if self._first is None:
                self._first = mark
            self._counts[n] += 1
            if self._counts[n] == 1 and len(self._counts) == self.args.count:
                self._last = mark
                self.done.set()

    def wait(self) -> bool:
        """Block until every task was handled or ``--timeout`` passed; True if all were."""
        return self.done.wait(self.args.timeout)

    def stopped(self) -> None:
        """The worker has stopped (acks flushed)."""
        self._stopped = (time.perf_counter(), time.process_time())

    def write(self, **extra: Any) -> None:
        with self._lock:
            counts = dict(self._counts)
        stopped = self._stopped or (time.perf_counter(), time.process_time())
        record = {
            "count": self.args.count,
            "threads": self.args.threads,
            "handler_ms": self.args.handler_ms,
            "handled": {str(n): c for n, c in counts.items()},
            "first": self._first,
            "last": self._last,
            "ready": self._ready,
            "stopped": stopped,
            **extra,
        }
        assert self.args.out is not None, "consume needs --out"
        self.args.out.write_text(json.dumps(record))


def watch(record: Record, stop: Any) -> threading.Thread:
    """Call ``stop()`` from a thread once every task was handled or time is up."""

    def run() -> None:
        record.wait()
        stop()

    thread = threading.Thread(target=run, name="bench-watch", daemon=True)
    thread.start()
    return thread


def consume(record: Record, run: Any, stop: Any) -> None:
    """Call ``run()`` (the worker, blocking until stopped), with ``stop()`` called once
    every task was handled; then write the record."""
    watch(record, stop)
    record.ready()
    try:
        run()
    except SystemExit:  # a worker that ends its run with sys.exit (Celery)
        pass
    record.stopped()
    record.write()


def sqsx_task(record: Record) -> Any:
    """The task as an sqsx handler (``fn(context, n)``), for both sqsx versions; without
    annotations, as 0.7.0's handlers are, so sqsx only binds the kwargs (an annotated one
    would also be validated with pydantic)."""

    def task(context, n):  # type: ignore[no-untyped-def]
        record.task(n)

    return task
