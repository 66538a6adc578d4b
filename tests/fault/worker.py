"""A worker process for the fault suite: consumes ``work`` tasks and records every call.

``work(context, task_id, seconds=0.0)`` appends ``start TASK_ID PID RECEIVE_COUNT TIME`` to
the record file, sleeps ``seconds``, then appends ``finish ...``. Each line is one
``os.write`` on an ``O_APPEND`` descriptor, so a SIGKILL never leaves half a line and the
test reads every call the handler made before the kill.

The worker stops gracefully on SIGINT/SIGTERM (``queue.run(...,
enable_signal_to_exit_gracefully=True)``) and exits 0; with ``--drain`` it also stops by
itself once the queue is empty.

Usage::

    python tests/fault/worker.py --endpoint URL --queue-url URL --record FILE [options]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any

import boto3
from botocore.config import Config

from sqsx import ConsumeOptions, Queue
from sqsx.timeouts import client_config


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="SQS endpoint URL (server or proxy)")
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--record", required=True, help="file to append handler calls to")
    parser.add_argument("--threads", type=int, default=8, help="handler threads (default 8)")
    parser.add_argument("--max-messages", type=int, default=10, help="per receive (default 10)")
    parser.add_argument("--receivers", type=int, default=None, help="(default: sqsx's)")
    parser.add_argument("--polling-wait", type=int, default=1, help="long poll, s (default 1)")
    parser.add_argument("--visibility-timeout", type=int, default=None, help="s (default: queue)")
    parser.add_argument("--min-backoff", type=int, default=1, help="s (default 1)")
    parser.add_argument("--max-backoff", type=int, default=5, help="s (default 5)")
    parser.add_argument("--connect-timeout", type=float, default=2.0, help="s (default 2)")
    parser.add_argument("--read-timeout", type=float, default=10.0, help="s (default 10)")
    parser.add_argument("--attempts", type=int, default=1, help="botocore attempts (default 1)")
    parser.add_argument(
        "--sqsx-config",
        action="store_true",
        help="use sqsx.timeouts.client_config() (its timeouts and retries) instead of the above",
    )
    parser.add_argument("--stop-timeout", type=float, default=None, help="s (default: none)")
    parser.add_argument("--drain", action="store_true", help="exit once the queue is empty")
    return parser.parse_args(argv)


class _Recorder:
    """Appends one line per handler event to the record file, atomically."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._pid = os.getpid()

    def write(self, event: str, task_id: str, receive_count: str) -> None:
        line = f"{event} {task_id} {self._pid} {receive_count} {time.time():.6f}\n"
        os.write(self._fd, line.encode())


def add_work_handler(queue: Queue, record: str) -> None:
    """Register ``work`` on ``queue``, appending its calls to the file ``record``."""
    recorder = _Recorder(record)

    def work(context: dict[str, Any], task_id: str, seconds: float = 0.0) -> None:
        count = context["sqs_message"]["Attributes"]["ApproximateReceiveCount"]
        recorder.write("start", task_id, count)
        time.sleep(seconds)  # the task's work
        recorder.write("finish", task_id, count)

    queue.add_task_handler("work", work)


def main(argv: list[str] | None = None) -> int:
    """Consume until stopped by a signal (or, with ``--drain``, until the queue is empty)."""
    args = _parse(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    config = Config(
        max_pool_connections=50,
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
        retries={"total_max_attempts": args.attempts, "mode": "standard"},
    )
    if args.sqsx_config:
        config = client_config(polling_wait_seconds=args.polling_wait, max_pool_connections=50)
    client = boto3.client(
        "sqs",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=config,
    )
    queue = Queue(
        url=args.queue_url,
        sqs_client=client,
        min_backoff_seconds=args.min_backoff,
        max_backoff_seconds=args.max_backoff,
    )
    add_work_handler(queue, args.record)
    queue.run(
        ConsumeOptions(
            max_messages=args.max_messages,
            max_threads=args.threads,
            polling_wait_seconds=args.polling_wait,
            wait_seconds=0,
            visibility_timeout=args.visibility_timeout,
            drain=args.drain,
            stop_timeout=args.stop_timeout,
            receivers=args.receivers,
        ),
        enable_signal_to_exit_gracefully=True,
    )
    logging.getLogger("worker").info("worker exits cleanly pid=%d", os.getpid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
