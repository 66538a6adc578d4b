"""The last step of ``make demo``: one 5 MiB task through S3, in both runtimes.

On the embedded server (moto answers S3 on the same port as SQS): a bucket, a queue with
``S3Payloads``; a 5 MiB task goes out as a pointer, the polling worker runs it and the
object is deleted after the message; then the same through ``LambdaHandler``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

from sqsx import Queue
from sqsx.cli.target import make_client
from sqsx.options import ConsumeOptions
from sqsx.payloads import S3Payloads
from sqsx.sqs import read_depth

BUCKET = "demo-payloads"
PAYLOAD_CHARS = 5 * 1024 * 1024


def objects(s3: Any) -> int:
    return int(s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0))


def receive_all(client: Any, url: str, count: int) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len(received) < count and time.monotonic() < deadline:
        received += client.receive_message(
            QueueUrl=url,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=1,
        ).get("Messages", [])
    return received


def run(endpoint: str) -> bool:
    """Both runtimes; True when each saw the whole payload and left no object behind."""
    from sqsx_lambda import LambdaHandler
    from sqsx_lambda.records import to_lambda

    client, s3 = make_client(endpoint), make_client(endpoint, service="s3")
    s3.create_bucket(Bucket=BUCKET)
    url = client.create_queue(QueueName="demo-payloads")["QueueUrl"]
    queue = Queue(url=url, sqs_client=client, payloads=S3Payloads(s3, BUCKET, key_prefix="demo/"))
    seen: list[str] = []
    done = threading.Event()

    def digest(context: dict[str, Any], document: str) -> None:
        via = "S3" if "S3Payload" in context["sqs_message"] else "inline"
        seen.append(f"{len(document):,} chars via {via}, sha256 {_sha(document)[:12]}")
        done.set()

    queue.add_task_handler("digest", digest)
    document = "0123456789abcdef" * (PAYLOAD_CHARS // 16)
    print(f"  sent: {len(document):,} chars, sha256 {_sha(document)[:12]}")

    queue.send_task("digest", {"document": document})
    pointer = client.receive_message(QueueUrl=url, VisibilityTimeout=0, WaitTimeSeconds=1)
    body = pointer.get("Messages", [{}])[0].get("Body", "")
    print(f"  on SQS: a {len(body)}-byte pointer; objects in s3://{BUCKET}: {objects(s3)}")
    options = ConsumeOptions(max_messages=10, max_threads=2, polling_wait_seconds=1, wait_seconds=0)
    worker = threading.Thread(target=queue.run, args=(options,), daemon=True)
    worker.start()
    ok = done.wait(30)
    ok = ok and _until(lambda: objects(s3) == 0 and read_depth(client, url).total == 0)
    queue.exit_gracefully()
    worker.join(30)
    print(f"  worker: handler got {seen[-1] if seen else 'nothing'}; objects left {objects(s3)}")

    done.clear()
    queue.send_task("digest", {"document": document})
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    records = [
        to_lambda(m, event_source_arn=arn["Attributes"]["QueueArn"])
        for m in receive_all(client, url, 1)
    ]
    response = LambdaHandler(queue, max_threads=1)({"Records": records}, None)
    print(f"  lambda: handler got {seen[-1] if len(seen) > 1 else 'nothing'}; response {response}")
    print(f"          objects left after the handler returned: {objects(s3)}")
    return ok and len(seen) == 2 and not response["batchItemFailures"] and objects(s3) == 0


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _until(predicate: Any, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())
