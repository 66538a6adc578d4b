"""The published sqsx 0.7.0 (its own venv): ``add_task`` to fill, ``consume_messages``."""

from __future__ import annotations

import importlib.metadata

import common

TASK = "bench"


def main() -> None:
    args = common.parse()
    from sqsx import Queue

    assert importlib.metadata.version("sqsx") == "0.7.0"
    queue = Queue(url=args.queue_url, sqs_client=common.client(args.endpoint))
    if args.mode == "fill":
        for n in range(args.count):  # 0.7.0 has no batch send
            queue.add_task(TASK, n=n)
        return
    record = common.Record(args)
    queue.add_task_handler(TASK, common.sqsx_task(record))

    def run() -> None:
        queue.consume_messages(
            max_messages=10,
            max_threads=args.threads,
            wait_seconds=0,
            polling_wait_seconds=1,
            enable_signal_to_exit_gracefully=False,
        )

    common.consume(record, run, queue.exit_gracefully)


if __name__ == "__main__":
    main()
