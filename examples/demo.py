"""``make demo``: both runtimes on an embedded local SQS, no AWS account, no Docker.

1. starts moto's SQS server on 127.0.0.1 (a free port) with a queue ``demo`` and its
   dead-letter queue ``demo-dlq`` (after 3 receives);
2. enqueues a few thousand tasks of ``examples/demo_tasks.py`` (most succeed, some raise
   ``Retry`` and come back a second later, some raise ``NoRetry``) and one poison message,
   while ``sqsx worker --drain`` drains the queue with live progress and exits by itself;
3. replays the sample event ``events/tasks-mixed.json`` through the same queue and runs its
   records through ``sqsx_lambda.LambdaHandler`` on the same handlers;
4. sends one 5 MiB task through S3 (``examples/demo_payloads.py``: moto serves S3 on the
   same port) and runs it in both runtimes;
5. prints a summary, stops everything it started, and exits 0 (1 if a check failed).

moto re-reads the whole queue on every call, so a deep queue is slow; the demo keeps at
most about ``2 * DEPTH_CAP`` messages waiting and sends more as the worker takes them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqsx import Queue, TaskMessage
from sqsx.cli.target import make_client, with_overrides
from sqsx.cli.tools import create_queues
from sqsx.codec import decode_task, task_attributes
from sqsx.exceptions import MessageDecodeError
from sqsx.local import LocalSqs
from sqsx.sqs import read_depth

EXAMPLES = Path(__file__).resolve().parent

#: Tasks to enqueue (SQSX_DEMO_TASKS; the tests use fewer). 2,000 take about 25 s here.
TASKS = int(os.environ.get("SQSX_DEMO_TASKS", "2000"))
DEPTH_CAP = 150
WORKER_TIMEOUT_SECONDS = 240
POISON = "this is not a task body"
SAMPLE_EVENT = EXAMPLES.parent / "events" / "tasks-mixed.json"


def task(index: int) -> tuple[str, dict[str, Any]]:
    """The demo's ``index``-th task: 10% ``Retry`` once, 5% ``NoRetry``, the rest succeed."""
    if index % 10 == 0:
        return "charge", {"order_id": f"busy-{index}", "amount_cents": 1200}
    if index % 20 == 5:
        return "charge", {"order_id": f"order-{index}", "amount_cents": -100}
    if index % 2:
        return "send_email", {"to": f"user{index}@example.com", "subject": "welcome"}
    return "sync_inventory", {"sku": f"sku-{index}"}


class Producer(threading.Thread):
    """Sends the poison message, then ``TASKS`` tasks with ``Queue.send_tasks``
    (SendMessageBatch): ``DEPTH_CAP`` more whenever fewer than ``DEPTH_CAP`` are waiting."""

    def __init__(self, queue: Queue) -> None:
        super().__init__(name="demo-producer", daemon=True)
        self._queue = queue
        self.sent = 0
        self.done = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        client, url = self._queue.sqs_client, self._queue.url
        client.send_message(
            QueueUrl=url, MessageBody=POISON, MessageAttributes=task_attributes("charge")
        )
        while self.sent < TASKS and not self.stop.is_set():
            visible = client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]["ApproximateNumberOfMessages"]
            if int(visible) >= DEPTH_CAP:
                self.stop.wait(0.05)
                continue
            batch = [
                TaskMessage(*task(i)) for i in range(self.sent, min(self.sent + DEPTH_CAP, TASKS))
            ]
            results = self._queue.send_tasks(batch)
            if not all(result.ok for result in results):
                raise RuntimeError(f"SQS refused tasks: {[r.error for r in results if not r.ok]}")
            self.sent += len(batch)
        self.done.set()


def run_worker(endpoint: str, url: str) -> int:
    """``sqsx worker demo_tasks:queue --drain`` in a subprocess; its exit code."""
    command = [
        "worker", "demo_tasks:queue", "--app-dir", str(EXAMPLES),
        "--endpoint-url", endpoint, "--queue-url", url, "--drain",
        "--threads", "16", "--max-messages", "10", "--polling-wait", "1",
        "--log-level", "WARNING", "--progress-interval", "2",
    ]  # fmt: skip
    print("$ sqsx " + " ".join(command), flush=True)
    worker = subprocess.Popen([sys.executable, "-m", "sqsx", *command])
    try:
        return worker.wait(timeout=WORKER_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"the worker did not drain the queue in {WORKER_TIMEOUT_SECONDS} s", flush=True)
        return 1
    finally:
        _stop(worker)


def _stop(worker: subprocess.Popen[bytes]) -> None:
    """Let a worker that is still running stop (after Ctrl-C the terminal has sent it
    SIGINT too), then SIGTERM it, then kill it."""
    steps: list[Callable[[], None]] = [lambda: None, worker.terminate, worker.kill]
    for step in steps:
        if worker.poll() is not None:
            return
        step()
        try:
            worker.wait(5)
        except subprocess.TimeoutExpired:
            continue


def worker_step(queue: Queue, endpoint: str) -> tuple[int, float]:
    """Enqueue while ``sqsx worker --drain`` drains; (worker exit code, seconds)."""
    client, url = queue.sqs_client, queue.url
    started = time.monotonic()
    producer = Producer(queue)
    producer.start()
    try:
        while producer.sent < min(DEPTH_CAP, TASKS) and producer.is_alive():
            time.sleep(0.05)
        code = run_worker(endpoint, url)
        # A worker that outran the producer saw an empty queue and stopped: run it again.
        while code == 0 and not (producer.done.is_set() and read_depth(client, url).total == 0):
            print("the queue ran dry before every task was sent: starting the worker again")
            code = run_worker(endpoint, url)
    finally:
        producer.stop.set()
        producer.join(10)
    return code, time.monotonic() - started


def lambda_step(queue: Queue) -> tuple[int, int] | None:
    """Replay the sample event's records on ``url`` and run them through ``LambdaHandler``
    with the demo's handlers; (records, reported failures), or ``None`` without
    ``sqsx_lambda``."""
    try:
        from sqsx_lambda import LambdaHandler
        from sqsx_lambda.records import to_boto3, to_lambda
    except ImportError as err:
        print(f"skipped: sqsx_lambda is not available ({err})")
        return None
    client, url = queue.sqs_client, queue.url
    records = json.loads(SAMPLE_EVENT.read_text())["Records"]
    for record in records:  # the same bodies and attributes, sent for real
        message = to_boto3(record)
        attributes = {
            name: {k: v for k, v in value.items() if k in ("DataType", "StringValue")}
            for name, value in message.get("MessageAttributes", {}).items()
        }
        client.send_message(QueueUrl=url, MessageBody=message["Body"], MessageAttributes=attributes)
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len(received) < len(records) and time.monotonic() < deadline:
        received += client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=1,
        ).get("Messages", [])
    event = {"Records": [to_lambda(m, event_source_arn=arn["QueueArn"]) for m in received]}
    handler = LambdaHandler(queue, max_threads=10)
    print(f"$ LambdaHandler(demo_tasks.queue, max_threads=10)(<{SAMPLE_EVENT.name}>, context)")
    response = handler(event, None)
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    done = [m for m in received if m["MessageId"] not in failed]
    for start in range(0, len(done), 10):  # what Lambda does with records not reported
        client.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(done[start : start + 10])
            ],
        )
    for message in received:
        fate = "reported, back after its backoff" if message["MessageId"] in failed else "deleted"
        print(f"  {describe(message):<58} {fate}")
    print(json.dumps(response))
    return len(received), len(failed)


def describe(message: dict[str, Any]) -> str:
    """``charge(order_id='busy-1003', amount_cents=1200)``, or why it is not a task."""
    try:
        task = decode_task(message.get("Body"), message.get("MessageAttributes"))
    except MessageDecodeError as err:
        return f"<{err}>"[:58]
    return f"{task.name}({', '.join(f'{k}={v!r}' for k, v in task.kwargs.items())})"


def main() -> int:
    """Run the demo; returns the exit code."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    started = time.monotonic()
    with LocalSqs(port=0) as server:
        endpoint = server.endpoint_url
        client = make_client(endpoint, pool=20)
        created = create_queues(client, ["demo"], with_dlq=True, max_receives=3)
        url, dlq_url = created[0][1], created[1][1]
        # Tasks take milliseconds (the heartbeat covers longer ones). A short visibility
        # timeout also bounds a moto race: when two receives dead-letter the same message,
        # one fails with a 500 after hiding the messages it had picked (botocore retries it,
        # the server logs a traceback): those come back after 5 s instead of 30.
        client.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "5"})
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        # The demo's handlers, on this server's queue (what `sqsx worker --queue-url
        # --endpoint-url` does too).
        sys.path.insert(0, str(EXAMPLES))
        import demo_tasks

        queue = with_overrides(demo_tasks.queue, queue_url=url, endpoint_url=endpoint, pool=20)
        assert isinstance(queue, Queue)
        print(f"sqsx demo: embedded SQS on {endpoint}, queue {url} (dead-letter queue: demo-dlq)")
        print(f"\n[1/3] polling worker: {TASKS:,} tasks and 1 poison message", flush=True)
        code, worker_seconds = worker_step(queue, endpoint)
        left, dead = read_depth(client, url).total, read_depth(client, dlq_url).total
        print(f"\n[2/3] AWS Lambda: the records of events/{SAMPLE_EVENT.name}", flush=True)
        lambda_started = time.monotonic()
        outcome = lambda_step(queue)
        lambda_seconds = time.monotonic() - lambda_started
        print("\n[3/3] a 5 MiB task through S3, in both runtimes", flush=True)
        import demo_payloads

        payloads_ok = outcome is None or demo_payloads.run(endpoint)
    ok = code == 0 and left == 0 and dead == 1 and (outcome is None or outcome[1] > 0)
    ok = ok and payloads_ok
    print("\nsummary")
    print(
        f"  worker  {TASKS:,} tasks + 1 poison message in {worker_seconds:.1f} s "
        f"(exit code {code}); left on the queue: {left}, in the dead-letter queue: {dead}"
    )
    if outcome is None:
        print("  lambda  skipped (sqsx_lambda is not installed)")
    else:
        records, failures = outcome
        print(
            f"  lambda  {records} records in {lambda_seconds:.1f} s: {records - failures} "
            f"deleted, {failures} in batchItemFailures with their backoff set on the server"
        )
    if outcome is not None:
        print(f"  S3      one 5 MiB task in each runtime: {'ok' if payloads_ok else 'FAILED'}")
    print(
        f"  total   {time.monotonic() - started:.1f} s, {'all checks passed' if ok else 'FAILED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
