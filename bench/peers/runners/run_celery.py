"""Celery with kombu's SQS transport (its own venv): an in-process worker, threads pool.

Filled with ``task.delay(n)`` (one SendMessage each: kombu has no batch send); consumed
by ``app.Worker(pool="threads", concurrency=N)`` with the transport's defaults except a
1 s long poll (``wait_time_seconds``, default 10, so that the stop is quick), on the queue
given by URL (``predefined_queues``: no ListQueues or CreateQueue). Stopped warm, as its
SIGTERM handler does: ``state.should_stop``, then the worker finishes what it runs.
Celery acknowledges a task when it starts (``task_acks_late`` off by default): kombu
deletes the message then, with one DeleteMessage.
"""

from __future__ import annotations

import common


def main() -> None:
    args = common.parse()
    from celery import Celery
    from celery.worker import state

    name = args.queue_url.rsplit("/", 1)[1]
    host_port = args.endpoint.split("://", 1)[1]
    app = Celery("bench", broker=f"sqs://{common.KEY}:{common.KEY}@{host_port}")
    app.conf.update(
        broker_transport_options={
            "region": common.REGION,
            "is_secure": False,
            "wait_time_seconds": 1,
            "predefined_queues": {
                name: {
                    "url": args.queue_url,
                    "access_key_id": common.KEY,
                    "secret_access_key": common.KEY,
                }
            },
        },
        task_default_queue=name,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    record = common.Record(args)

    @app.task(name="bench")
    def task(n: int) -> None:
        record.task(n)

    if args.mode == "fill":
        with app.producer_or_acquire() as producer:
            for n in range(args.count):
                task.apply_async((n,), producer=producer)
        return

    def stop() -> None:
        state.should_stop = 0  # EX_OK: what the warm-shutdown signal handler sets

    worker = app.Worker(
        pool="threads",
        concurrency=args.threads,
        loglevel="WARNING",
        quiet=True,
        redirect_stdouts=False,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
    )
    common.consume(record, worker.start, stop)


if __name__ == "__main__":
    main()
