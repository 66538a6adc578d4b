"""dramatiq with dramatiq-sqs (its own venv): an in-process ``Worker`` with N threads.

Filled with dramatiq's own message encoding (``b64encode(message.encode())``, what
``SQSBroker.enqueue`` sends), ten per SendMessageBatch to keep the fill short; consumed by
``dramatiq.Worker(broker, worker_threads=N)`` with the default middleware, stopped with
``Worker.stop()``. Its receive long-polls for ``worker_timeout`` (1 s here).
"""

from __future__ import annotations

from base64 import b64encode

import common


def main() -> None:
    args = common.parse()
    import dramatiq
    from dramatiq_sqs import SQSBroker

    name = args.queue_url.rsplit("/", 1)[1]
    broker = SQSBroker(
        endpoint_url=args.endpoint,
        region_name=common.REGION,
        aws_access_key_id=common.KEY,
        aws_secret_access_key=common.KEY,
    )
    dramatiq.set_broker(broker)
    record = common.Record(args)

    @dramatiq.actor(queue_name=name, max_retries=0)
    def task(n: int) -> None:
        record.task(n)

    if args.mode == "fill":
        client = common.client(args.endpoint)
        bodies = [b64encode(task.message(n).encode()).decode() for n in range(args.count)]
        for start in range(0, len(bodies), 10):
            entries = [
                {"Id": str(i), "MessageBody": body}
                for i, body in enumerate(bodies[start : start + 10])
            ]
            response = client.send_message_batch(QueueUrl=args.queue_url, Entries=entries)
            assert not response.get("Failed"), response["Failed"]
        return
    worker = dramatiq.Worker(broker, worker_threads=args.threads, worker_timeout=1000)
    record.ready()
    worker.start()
    record.wait()
    worker.stop()
    record.stopped()
    record.write()


if __name__ == "__main__":
    main()
