"""sqsx (this checkout): ``Queue.send_tasks`` to fill, ``Queue.run`` to consume."""

from __future__ import annotations

import common

TASK = "bench"


def main() -> None:
    args = common.parse()
    from sqsx import ConsumeOptions, Queue, TaskMessage

    queue = Queue(url=args.queue_url, sqs_client=common.client(args.endpoint))
    if args.mode == "fill":
        results = queue.send_tasks(TaskMessage(TASK, {"n": n}) for n in range(args.count))
        failed = [r for r in results if not r.ok]
        assert not failed, f"{len(failed)} tasks not sent: {failed[0]}"
        return
    record = common.Record(args)
    queue.add_task_handler(TASK, common.sqsx_task(record))
    options = ConsumeOptions(
        max_messages=10, max_threads=args.threads, polling_wait_seconds=1, wait_seconds=0
    )
    common.consume(record, lambda: queue.run(options), queue.exit_gracefully)


if __name__ == "__main__":
    main()
