"""``SimulatedSqs``: the boto3 SQS client surface over in-memory queues."""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ParamValidationError

from bench.simsqs import _wire as wire
from bench.simsqs._queues import QueueOperations
from bench.simsqs._store import Message, QueueReport, SimQueue

Params = dict[str, Any]

_sleep = time.sleep  # the latency; tests replace it


class SimulatedSqs(QueueOperations):
    """A thread-safe, in-memory stand-in for ``boto3.client("sqs")`` (standard queues).

    Methods take boto3's keyword arguments, validate them as boto3 does before sending
    (``ParamValidationError``), and return boto3's response dicts; SQS errors are raised as
    botocore ``ClientError`` subclasses with SQS's codes, the classes of ``exceptions``.

    Args:
        latency_seconds: time every call takes, in seconds (default 0.010, an in-region
            round trip). Half passes before the call takes effect and half after, with no
            lock held, so concurrent calls overlap. Settable at any time; 0 for unit tests.
        region: region in queue URLs and ARNs (default ``us-east-1``).
        account_id: account in queue URLs and ARNs (default ``000000000000``).
        endpoint_url: prefix of queue URLs (default ``https://sqs.{region}.amazonaws.com``).
    """

    def __init__(
        self,
        *,
        latency_seconds: float = 0.010,
        region: str = "us-east-1",
        account_id: str = "000000000000",
        endpoint_url: str | None = None,
    ) -> None:
        if latency_seconds < 0:
            raise ValueError(f"latency_seconds must be >= 0, got {latency_seconds}")
        self.latency_seconds = latency_seconds
        self._region = region
        self._account = account_id
        self._endpoint = (endpoint_url or f"https://sqs.{region}.amazonaws.com").rstrip("/")
        self._lock = threading.Lock()
        self._queues: dict[str, SimQueue] = {}
        self._calls: collections.Counter[str] = collections.Counter()
        self._cpu_seconds = 0.0
        self._offset = 0.0

    # -- inspection ----------------------------------------------------------------------

    @property
    def exceptions(self) -> Any:
        """botocore's SQS exception classes (``QueueDoesNotExist``...), as on a boto3 client."""
        return wire.service()[2]

    def call_counts(self) -> dict[str, int]:
        """Calls made so far by operation name (``ReceiveMessage``...), refused ones included."""
        with self._lock:
            return dict(self._calls)

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds the simulator spent in calls, parameter checks included (boto3 makes
        those too, but bills the rest of a real call: serialising, signing, HTTP), to tell
        its cost apart from its caller's."""
        with self._lock:
            return self._cpu_seconds

    def report(self, queue_url: str) -> QueueReport:
        """Sends, deliveries and deletes of ``queue_url`` so far, and its depth now.

        Raises:
            ValueError: there is no such queue.
        """
        queue = self._find(queue_url)
        if queue is None:
            raise ValueError(f"no simulated queue at {queue_url}")
        return queue.report()

    def advance_time(self, seconds: float) -> None:
        """Move the simulated clock ``seconds`` forward: visibility timeouts and delays end
        sooner (timestamps in responses keep the wall clock)."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        with self._lock:
            self._offset += seconds
            queues = list(self._queues.values())
        for queue in queues:
            queue.wake()

    # -- queues ----------------------------------------------------------------------------

    def create_queue(self, **kwargs: Any) -> Params:
        """CreateQueue: ``QueueName``, ``Attributes``. FIFO raises ``NotImplementedError``."""
        return self._call("CreateQueue", kwargs, self._create_queue)

    def get_queue_url(self, **kwargs: Any) -> Params:
        """GetQueueUrl: ``QueueName``."""
        return self._call("GetQueueUrl", kwargs, self._get_queue_url)

    def get_queue_attributes(self, **kwargs: Any) -> Params:
        """GetQueueAttributes: ``QueueUrl``, ``AttributeNames`` (``All`` or names)."""
        return self._call("GetQueueAttributes", kwargs, self._get_queue_attributes)

    def set_queue_attributes(self, **kwargs: Any) -> Params:
        """SetQueueAttributes: ``QueueUrl``, ``Attributes`` (``RedrivePolicy``...)."""
        return self._call("SetQueueAttributes", kwargs, self._set_queue_attributes)

    def list_queues(self, **kwargs: Any) -> Params:
        """ListQueues: ``QueueNamePrefix``."""
        return self._call("ListQueues", kwargs, self._list_queues)

    def purge_queue(self, **kwargs: Any) -> Params:
        """PurgeQueue: ``QueueUrl``; every message goes at once."""
        return self._call("PurgeQueue", kwargs, self._purge_queue)

    def delete_queue(self, **kwargs: Any) -> Params:
        """DeleteQueue: ``QueueUrl``; receives waiting on it return empty."""
        return self._call("DeleteQueue", kwargs, self._delete_queue)

    # -- messages --------------------------------------------------------------------------

    def send_message(self, **kwargs: Any) -> Params:
        """SendMessage: ``QueueUrl``, ``MessageBody``, ``MessageAttributes``, ``DelaySeconds``."""
        return self._call("SendMessage", kwargs, lambda p: _sent(self._put(self._queue(p), p)))

    def send_message_batch(self, **kwargs: Any) -> Params:
        """SendMessageBatch: ``QueueUrl``, up to ten ``Entries``."""
        return self._call("SendMessageBatch", kwargs, self._send_message_batch)

    def receive_message(self, **kwargs: Any) -> Params:
        """ReceiveMessage: ``QueueUrl``, ``MaxNumberOfMessages`` (1-10, default 1),
        ``WaitTimeSeconds`` (long polling, 0-20 s), ``VisibilityTimeout`` (seconds),
        ``AttributeNames`` / ``MessageSystemAttributeNames``, ``MessageAttributeNames``
        (``All``, names, ``prefix.*``)."""
        return self._call("ReceiveMessage", kwargs, self._receive_message)

    def delete_message(self, **kwargs: Any) -> Params:
        """DeleteMessage: ``QueueUrl``, ``ReceiptHandle``."""
        return self._call("DeleteMessage", kwargs, self._delete_message)

    def delete_message_batch(self, **kwargs: Any) -> Params:
        """DeleteMessageBatch: ``QueueUrl``, up to ten ``Entries`` (``Id``, ``ReceiptHandle``)."""
        return self._call(
            "DeleteMessageBatch",
            kwargs,
            lambda p: self._batch(p, "DeleteMessageBatchRequestEntry", self._delete_entry),
        )

    def change_message_visibility(self, **kwargs: Any) -> Params:
        """ChangeMessageVisibility: ``QueueUrl``, ``ReceiptHandle``, ``VisibilityTimeout``."""
        return self._call("ChangeMessageVisibility", kwargs, self._change_message_visibility)

    def change_message_visibility_batch(self, **kwargs: Any) -> Params:
        """ChangeMessageVisibilityBatch: ``QueueUrl``, up to ten ``Entries`` (``Id``,
        ``ReceiptHandle``, ``VisibilityTimeout``)."""
        return self._call(
            "ChangeMessageVisibilityBatch",
            kwargs,
            lambda p: self._batch(
                p, "ChangeMessageVisibilityBatchRequestEntry", self._change_entry
            ),
        )

    # -- the call path ---------------------------------------------------------------------

    def _call(self, operation: str, params: Params, serve: Callable[[Params], Params]) -> Params:
        started = time.thread_time()  # all but the latency counts in ``cpu_seconds``
        model, validator, exceptions = wire.service()
        report = validator.validate(params, model.operation_model(operation).input_shape)
        if report.has_errors():  # boto3 refuses these before sending anything
            self._spent(started)
            raise ParamValidationError(report=report.generate_report())
        with self._lock:
            self._calls[operation] += 1
        half = self.latency_seconds / 2
        if half:
            self._spent(started)
            _sleep(half)
            started = time.thread_time()
        refusal: wire.Refused | None = None
        try:
            response = serve(params)
        except wire.Refused as err:
            refusal, response = err, {}
        metadata = {"RequestId": str(uuid.uuid4()), "HTTPStatusCode": 200, "RetryAttempts": 0}
        self._spent(started)
        if half:
            _sleep(half)
        if refusal is not None:
            error = {
                "Error": {
                    "Message": refusal.message,
                    "Code": refusal.code,
                    "QueryErrorCode": refusal.query_code,
                    "Type": "Sender",
                },
                "ResponseMetadata": {**metadata, "HTTPStatusCode": 400},
            }
            raise exceptions.from_code(refusal.query_code)(error, operation)
        response["ResponseMetadata"] = metadata
        return response

    def _spent(self, started: float) -> None:
        spent = time.thread_time() - started
        with self._lock:
            self._cpu_seconds += spent

    def _now(self) -> float:
        return time.monotonic() + self._offset

    # -- message operations ----------------------------------------------------------------

    def _put(self, queue: SimQueue, params: Mapping[str, Any]) -> Message:
        body = params["MessageBody"]
        attributes = {k: dict(v) for k, v in (params.get("MessageAttributes") or {}).items()}
        wire.check_message(body, attributes)
        return queue.put(body, attributes, params.get("DelaySeconds"))

    def _send_message_batch(self, params: Params) -> Params:
        queue = self._queue(params)
        wire.check_batch(params["Entries"], "SendMessageBatchRequestEntry")
        successful, failed = [], []
        for entry in params["Entries"]:
            try:
                successful.append({"Id": entry["Id"], **_sent(self._put(queue, entry))})
            except wire.Refused as err:
                failed.append(err.entry(entry["Id"]))
        return {"Successful": successful, "Failed": failed}

    def _receive_message(self, params: Params) -> Params:
        queue = self._queue(params)
        count = params.get("MaxNumberOfMessages", 1)
        if not 1 <= count <= wire.MAX_BATCH_ENTRIES:
            raise wire.out_of_range("MaxNumberOfMessages", count, 1, wire.MAX_BATCH_ENTRIES)
        with queue.cond:
            wait = params.get("WaitTimeSeconds", queue.setting("ReceiveMessageWaitTimeSeconds"))
            visibility = params.get("VisibilityTimeout", queue.setting("VisibilityTimeout"))
            redrive = wire.redrive(queue.attributes.get("RedrivePolicy"))
        if not 0 <= wait <= wire.MAX_WAIT_SECONDS:
            raise wire.out_of_range("WaitTimeSeconds", wait, 0, wire.MAX_WAIT_SECONDS)
        if not 0 <= visibility <= wire.MAX_VISIBILITY_SECONDS:
            raise wire.out_of_range("VisibilityTimeout", visibility, 0, wire.MAX_VISIBILITY_SECONDS)
        target = self._by_arn(redrive[0]) if redrive else None
        max_receives = redrive[1] if redrive and target else None
        taken, doomed = queue.receive(count, visibility, wait, max_receives)
        for message in doomed:
            if target is not None:
                target.adopt(message)
        system = set(params.get("AttributeNames") or ()) | set(
            params.get("MessageSystemAttributeNames") or ()
        )
        wanted = set(params.get("MessageAttributeNames") or ())
        messages = []
        for message, handle, receive_count in taken:
            base = {
                "MessageId": message.message_id,
                "ReceiptHandle": handle,
                "MD5OfBody": message.md5,
                "Body": message.body,
            }
            values = {
                "SenderId": wire.SENDER_ID,
                "SentTimestamp": str(message.sent_ms),
                "ApproximateReceiveCount": str(receive_count),
                "ApproximateFirstReceiveTimestamp": str(message.first_receive_ms),
            }
            messages.append(
                wire.render_message(
                    base, message.attributes, values, system, wanted, message.attributes_md5
                )
            )
        return {"Messages": messages} if messages else {}

    def _delete_message(self, params: Params) -> Params:
        self._queue(params).delete(params["ReceiptHandle"])
        return {}

    def _change_message_visibility(self, params: Params) -> Params:
        self._queue(params).change(params["ReceiptHandle"], params["VisibilityTimeout"])
        return {}

    def _batch(
        self, params: Params, kind: str, apply: Callable[[SimQueue, Mapping[str, Any]], None]
    ) -> Params:
        queue = self._queue(params)
        wire.check_batch(params["Entries"], kind)
        successful, failed = [], []
        for entry in params["Entries"]:
            try:
                apply(queue, entry)
            except wire.Refused as err:
                failed.append(err.entry(entry["Id"]))
                continue
            successful.append({"Id": entry["Id"]})
        return {"Successful": successful, "Failed": failed}

    @staticmethod
    def _delete_entry(queue: SimQueue, entry: Mapping[str, Any]) -> None:
        queue.delete(entry["ReceiptHandle"])

    @staticmethod
    def _change_entry(queue: SimQueue, entry: Mapping[str, Any]) -> None:
        queue.change(entry["ReceiptHandle"], entry.get("VisibilityTimeout", 0))


def _sent(message: Message) -> Params:
    fields: Params = {"MD5OfMessageBody": message.md5}
    if message.attributes:
        fields["MD5OfMessageAttributes"] = message.attributes_md5
    fields["MessageId"] = message.message_id
    return fields
