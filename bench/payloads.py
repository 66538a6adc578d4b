"""Large payloads through S3: a 10 MiB task's round trip in both runtimes, and the calls it
costs beyond an inline task, against moto's SQS and S3 over HTTP on 127.0.0.1.

A round trip is: ``send_task`` returns (PutObject + SendMessage) -> the handler sees the
kwargs -> the object is gone (DeleteObject after SQS confirmed the message's delete). The
floor is the same steps written by hand with boto3 (PutObject, SendMessage, ReceiveMessage,
GetObject, DeleteMessage, DeleteObject) in the same run, so the ratio compares like with
like on this machine. Calls are counted with botocore event hooks on both clients.
"""

from __future__ import annotations

import collections
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqsx.codec import decode_task, encode_kwargs, task_attributes

MIB = 1024 * 1024
PAYLOAD_BYTES = 10 * MIB  # the task body (base64 JSON) offloaded to S3
_RECEIVES = frozenset({"ReceiveMessage", "GetQueueAttributes"})  # per poll, not per message


@dataclass
class PayloadResult:
    """Round trips of one runtime (``worker``, ``lambda``) or of the hand-written floor."""

    runtime: str
    body_bytes: int
    send_ms: list[float] = field(default_factory=list)
    seen_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    calls_per_message: dict[str, float] = field(default_factory=dict)
    inline_calls_per_message: dict[str, float] = field(default_factory=dict)
    objects_left: int = 0
    lost: int = 0

    @property
    def median_ms(self) -> float:
        return statistics.median(self.total_ms) if self.total_ms else float("nan")

    def extra_calls(self) -> dict[str, float]:
        """Calls per message beyond an inline task's, by operation (receives left out)."""
        ops = set(self.calls_per_message) | set(self.inline_calls_per_message)
        extra = {
            op: self.calls_per_message.get(op, 0) - self.inline_calls_per_message.get(op, 0)
            for op in sorted(ops)
        }
        return {op: n for op, n in extra.items() if n}

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "median_ms": self.median_ms, "extra_calls": self.extra_calls()}


class _Calls:
    """Per-operation call counts of some clients (botocore ``before-call`` hooks)."""

    def __init__(self, *clients: Any) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        for client in clients:
            client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.counts[model.name] += 1

    def take(self) -> collections.Counter[str]:
        with self._lock:
            counts, self.counts = self.counts, collections.Counter()
        return counts


def _per_message(counts: collections.Counter[str], messages: int) -> dict[str, float]:
    return {op: n / messages for op, n in counts.items() if op not in _RECEIVES}


def _kwargs(body_bytes: int) -> dict[str, Any]:
    # base64 turns 3 bytes into 4: this much data makes a body of about ``body_bytes``.
    return {"data": "x" * (body_bytes * 3 // 4 - 16)}


def run_all(quick: bool = False) -> list[PayloadResult]:
    """The floor, then both runtimes, on one local server; 1 round trip each when quick."""
    import boto3

    from sqsx.local import LocalSqs

    repeats = 1 if quick else 3
    with LocalSqs(port=0) as server:
        make = _client_factory(boto3, server.endpoint_url)
        sqs, s3 = make("sqs"), make("s3")
        s3.create_bucket(Bucket="bench-payloads")
        calls = _Calls(sqs, s3)
        kwargs = _kwargs(PAYLOAD_BYTES)
        return [
            _floor(sqs, s3, kwargs, repeats),
            _worker(sqs, s3, calls, kwargs, repeats),
            _lambda(sqs, s3, calls, kwargs, repeats),
        ]


def _client_factory(boto3: Any, endpoint_url: str) -> Callable[[str], Any]:
    from botocore.config import Config

    def make(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(max_pool_connections=20),
        )

    return make


def _new_queue(sqs: Any, name: str) -> str:
    return str(sqs.create_queue(QueueName=name)["QueueUrl"])


def _objects(s3: Any) -> int:
    return int(s3.list_objects_v2(Bucket="bench-payloads").get("KeyCount", 0))


def _floor(sqs: Any, s3: Any, kwargs: dict[str, Any], repeats: int) -> PayloadResult:
    url = _new_queue(sqs, "bench-payloads-floor")
    result = PayloadResult("boto3 by hand", len(encode_kwargs(kwargs)))
    for n in range(repeats):
        started = time.perf_counter()
        body = encode_kwargs(kwargs)  # the same task format, encoded and decoded by hand
        s3.put_object(Bucket="bench-payloads", Key=f"floor-{n}", Body=body.encode())
        sqs.send_message(QueueUrl=url, MessageBody=f"floor-{n}")
        result.send_ms.append((time.perf_counter() - started) * 1000)
        messages: list[Any] = []
        for _ in range(20):  # bounded: 20 long polls of 1 s
            messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
            if messages:
                break
        if not messages:
            result.lost += 1
            continue
        key = messages[0]["Body"]
        data = s3.get_object(Bucket="bench-payloads", Key=key)["Body"].read()
        task = decode_task(data.decode(), task_attributes("blob"))
        result.seen_ms.append((time.perf_counter() - started) * 1000)
        result.lost += len(task.kwargs["data"]) != len(kwargs["data"])
        sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
        s3.delete_object(Bucket="bench-payloads", Key=key)
        result.total_ms.append((time.perf_counter() - started) * 1000)
    result.objects_left = _objects(s3)
    return result


class _Seen:
    """The handler: records when each task's kwargs arrived, and how big they were."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.event = threading.Event()
        self.at = 0.0

    def __call__(self, context: dict[str, Any], data: str) -> None:
        self.at = time.perf_counter()
        self.sizes.append(len(data))
        self.event.set()


def _payload_queue(sqs: Any, s3: Any, name: str, seen: _Seen) -> Any:
    from sqsx import Queue
    from sqsx.payloads import S3Payloads

    queue = Queue(
        url=_new_queue(sqs, name),
        sqs_client=sqs,
        payloads=S3Payloads(s3, "bench-payloads", max_object_bytes=2 * PAYLOAD_BYTES),
    )
    queue.add_task_handler("blob", seen)
    return queue


def _deleted_event(s3: Any) -> threading.Event:
    gone = threading.Event()
    s3.meta.events.register("after-call.s3.DeleteObject", lambda **_: gone.set())
    return gone


def _worker(
    sqs: Any, s3: Any, calls: _Calls, kwargs: dict[str, Any], repeats: int
) -> PayloadResult:
    from sqsx.options import ConsumeOptions

    seen = _Seen()
    queue = _payload_queue(sqs, s3, "bench-payloads-worker", seen)
    options = ConsumeOptions(max_messages=10, max_threads=2, polling_wait_seconds=1, wait_seconds=0)
    consumer = threading.Thread(target=queue.run, args=(options,), daemon=True)
    consumer.start()
    gone = _deleted_event(s3)
    result = PayloadResult("worker", 0)
    try:
        result.inline_calls_per_message = _inline_calls(queue, seen, calls, repeats)
        calls.take()
        for _ in range(repeats):
            seen.event.clear()
            gone.clear()
            started = time.perf_counter()
            queue.send_task("blob", kwargs)
            result.send_ms.append((time.perf_counter() - started) * 1000)
            if not (seen.event.wait(30) and gone.wait(30)):
                result.lost += 1
                continue
            result.seen_ms.append((seen.at - started) * 1000)
            result.total_ms.append((time.perf_counter() - started) * 1000)
        result.calls_per_message = _per_message(calls.take(), repeats)
    finally:
        queue.exit_gracefully()
        consumer.join(30)
    result.body_bytes = len(encode_kwargs(kwargs))
    result.lost += sum(size != len(kwargs["data"]) for size in seen.sizes[repeats:])
    result.objects_left = _objects(s3)
    return result


def _inline_calls(queue: Any, seen: _Seen, calls: _Calls, repeats: int) -> dict[str, float]:
    """Per-message calls of small tasks on the running worker (the inline reference)."""
    acked = threading.Event()
    queue.sqs_client.meta.events.register(
        "after-call.sqs.DeleteMessageBatch", lambda **_: acked.set()
    )
    calls.take()
    for _ in range(repeats):
        seen.event.clear()
        acked.clear()
        queue.send_task("blob", {"data": "small"})
        seen.event.wait(30)
        acked.wait(30)  # the batched delete goes out after the ack delay (0.2 s)
    return _per_message(calls.take(), repeats)


def _lambda(
    sqs: Any, s3: Any, calls: _Calls, kwargs: dict[str, Any], repeats: int
) -> PayloadResult:
    from sqsx_lambda import LambdaHandler
    from sqsx_lambda.records import to_lambda

    seen = _Seen()
    queue = _payload_queue(sqs, s3, "bench-payloads-lambda", seen)
    handler = LambdaHandler(queue, max_threads=1)
    arn = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["QueueArn"])
    arn = arn["Attributes"]["QueueArn"]
    result = PayloadResult("lambda", len(encode_kwargs(kwargs)))

    def round_trip(task_kwargs: dict[str, Any]) -> tuple[float, float, float] | None:
        started = time.perf_counter()
        queue.send_task("blob", task_kwargs)
        sent = time.perf_counter()
        messages: list[Any] = []
        for _ in range(20):  # bounded: what Lambda's poller does, 20 long polls at most
            messages = sqs.receive_message(
                QueueUrl=queue.url,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=1,
            ).get("Messages", [])
            if messages:
                break
        if not messages:
            return None
        event = {"Records": [to_lambda(m, event_source_arn=arn) for m in messages]}
        response = handler(event, None)
        done = time.perf_counter()  # LambdaHandler deleted the objects before returning
        if response["batchItemFailures"]:
            return None
        sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=messages[0]["ReceiptHandle"])
        return (sent - started) * 1000, (seen.at - started) * 1000, (done - started) * 1000

    calls.take()
    for _ in range(repeats):
        round_trip({"data": "small"})
    result.inline_calls_per_message = _per_message(calls.take(), repeats)
    for _ in range(repeats):
        timing = round_trip(kwargs)
        if timing is None:
            result.lost += 1
            continue
        result.send_ms.append(timing[0])
        result.seen_ms.append(timing[1])
        result.total_ms.append(timing[2])
    result.calls_per_message = _per_message(calls.take(), repeats)
    result.objects_left = _objects(s3)
    return result


def rows(results: list[PayloadResult]) -> list[Any]:
    """Table rows: each runtime against the hand-written floor of the same run."""
    from bench.report import Row

    floor = next((r for r in results if r.runtime == "boto3 by hand"), None)
    out = []
    for result in results:
        extra = result.extra_calls()
        spelled = ", ".join(f"{op} {n:+.0f}" for op, n in extra.items()) or "none"
        reference = ""
        if floor is not None and result is not floor and floor.total_ms:
            ratio = result.median_ms / floor.median_ms
            reference = f"boto3 by hand {floor.median_ms:,.0f} ms; ratio {ratio:.2f}"
        sqs_extra = sum(
            n for op, n in extra.items() if op not in ("PutObject", "GetObject", "DeleteObject")
        )
        checks_ok = (
            result.lost == 0 and result.objects_left == 0 and (result is floor or sqs_extra == 0)
        )
        out.append(
            Row(
                scenario=f"payloads: {result.body_bytes / MIB:.0f} MiB via S3, {result.runtime}",
                measured=f"{result.median_ms:,.0f} ms round trip (send {_median(result.send_ms)}, "
                f"handler {_median(result.seen_ms)}; median of {len(result.total_ms)})",
                reference=reference,
                calls="" if result is floor else f"extra per msg: {spelled}",
                cpu="",
                integrity=f"{result.lost} / 0; {result.objects_left} objects left",
                target="" if result is floor else "0 lost, 0 objects left, 0 extra SQS calls",
                verdict="" if result is floor else ("met" if checks_ok else "MISSED"),
            )
        )
    return out


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ms" if values else "-"
