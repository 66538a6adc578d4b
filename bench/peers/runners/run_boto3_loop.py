"""The minimal hand-written boto3 worker: one receiver, N handler threads, batched deletes.

What a careful user writes in an afternoon: the receiver asks for ten messages whenever
ten more fit under ``threads + 10`` held; a pool of ``threads`` runs them; a deleter sends
DeleteMessageBatch as soon as ten are done, or after 0.2 s with fewer. No retry policy,
no heartbeat, no stop sequence beyond "stop receiving, finish, flush". It reads the same
wire format as sqsx (base64 JSON ``{"kwargs": ...}``) and asks for what sqsx asks for.
"""

from __future__ import annotations

import base64
import json
import queue as queue_module
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import common


class Loop:
    """The receiver (the calling thread), the handler pool and the deleter thread."""

    def __init__(self, args: Any, record: common.Record) -> None:
        self.args = args
        self.record = record
        self.client = common.client(args.endpoint)
        self.stop = threading.Event()
        self.room = threading.Semaphore(args.threads + 10)
        self.done: queue_module.Queue[str | None] = queue_module.Queue()

    def handle(self, message: dict[str, Any]) -> None:
        try:
            body = json.loads(base64.urlsafe_b64decode(message["Body"]))
            self.record.task(**body["kwargs"])
            self.done.put(message["ReceiptHandle"])
        finally:
            self.room.release()

    def delete(self) -> None:
        pending: list[str] = []
        while True:
            try:
                handle = self.done.get(timeout=0.2)
            except queue_module.Empty:
                handle = ""
            if handle is None:
                break
            if handle:
                pending.append(handle)
            if pending and (len(pending) == 10 or not handle):
                self.flush(pending)
        if pending:
            self.flush(pending)

    def flush(self, pending: list[str]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(pending)]
        self.client.delete_message_batch(QueueUrl=self.args.queue_url, Entries=entries)
        pending.clear()

    def run(self) -> None:
        deleter = threading.Thread(target=self.delete, name="deleter")
        deleter.start()
        with ThreadPoolExecutor(self.args.threads) as pool:
            while not self.stop.is_set():
                for _ in range(10):
                    self.room.acquire()
                messages = self.client.receive_message(
                    QueueUrl=self.args.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=1,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                for _ in range(10 - len(messages)):
                    self.room.release()
                for message in messages:
                    pool.submit(self.handle, message)
        self.done.put(None)
        deleter.join()


def main() -> None:
    args = common.parse()
    if args.mode == "fill":
        raise SystemExit("fill with run_sqsx.py: the same wire format")
    record = common.Record(args)
    loop = Loop(args, record)
    common.consume(record, loop.run, loop.stop.set)


if __name__ == "__main__":
    main()
