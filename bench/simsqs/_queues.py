"""The queue table of ``SimulatedSqs`` and the calls on it: CreateQueue, GetQueueUrl,
GetQueueAttributes, SetQueueAttributes, ListQueues, PurgeQueue, DeleteQueue."""

from __future__ import annotations

import threading
from typing import Any

from bench.simsqs import _wire as wire
from bench.simsqs._store import SimQueue

Params = dict[str, Any]


class QueueOperations:
    """Queues by name (``_queues``, under ``_lock``), found by URL or ARN, and the queue-level
    calls; ``SimulatedSqs`` adds the message calls and the call path."""

    _lock: threading.Lock
    _queues: dict[str, SimQueue]
    _region: str
    _account: str
    _endpoint: str

    def _now(self) -> float:
        raise NotImplementedError

    def _find(self, url: str) -> SimQueue | None:
        """The queue named by the last segment of ``url``, when the account segment is ours."""
        head, _, name = url.rstrip("/").rpartition("/")
        if head.rpartition("/")[2] != self._account:
            return None
        with self._lock:
            return self._queues.get(name)

    def _queue(self, params: Params) -> SimQueue:
        queue = self._find(params["QueueUrl"])
        if queue is None:
            raise wire.no_queue()
        return queue

    def _by_arn(self, arn: str) -> SimQueue | None:
        with self._lock:
            return next((q for q in self._queues.values() if q.arn == arn), None)

    def _create_queue(self, params: Params) -> Params:
        name = params["QueueName"]
        attributes = {k: str(v) for k, v in (params.get("Attributes") or {}).items()}
        if name.endswith(".fifo") or attributes.get("FifoQueue", "false").lower() == "true":
            raise NotImplementedError("SimulatedSqs simulates standard queues, not FIFO")
        if not wire.QUEUE_NAME.match(name):
            raise wire.invalid(
                "Can only include alphanumeric characters, hyphens, or underscores. "
                "1 to 80 in length"
            )
        wire.check_queue_attributes(attributes)
        with self._lock:
            queue = self._queues.get(name)
            if queue is None:
                url = f"{self._endpoint}/{self._account}/{name}"
                arn = f"arn:aws:sqs:{self._region}:{self._account}:{name}"
                self._queues[name] = SimQueue(name, url, arn, attributes, self._now)
                return {"QueueUrl": url}
        with queue.cond:
            if any(queue.attributes.get(k) != v for k, v in attributes.items()):
                raise wire.Refused(
                    "QueueAlreadyExists", "The specified queue already exists.", "QueueNameExists"
                )
        return {"QueueUrl": queue.url}

    def _get_queue_url(self, params: Params) -> Params:
        with self._lock:
            queue = self._queues.get(params["QueueName"])
        if queue is None:
            raise wire.no_queue()
        return {"QueueUrl": queue.url}

    def _get_queue_attributes(self, params: Params) -> Params:
        queue = self._queue(params)
        names = params.get("AttributeNames") or []
        if not names:
            return {}
        visible, in_flight, delayed = queue.counts()
        with queue.cond:
            values = {
                **queue.attributes,
                "ApproximateNumberOfMessages": str(visible),
                "ApproximateNumberOfMessagesNotVisible": str(in_flight),
                "ApproximateNumberOfMessagesDelayed": str(delayed),
                "CreatedTimestamp": str(int(queue.created)),
                "LastModifiedTimestamp": str(int(queue.created)),
                "QueueArn": queue.arn,
            }
        if "All" not in names:
            values = {n: values[n] for n in names if n in values}
        return {"Attributes": values}

    def _set_queue_attributes(self, params: Params) -> Params:
        queue = self._queue(params)
        attributes = {k: str(v) for k, v in params["Attributes"].items()}
        wire.check_queue_attributes(attributes)
        with queue.cond:
            queue.attributes.update(attributes)
        return {}

    def _list_queues(self, params: Params) -> Params:
        prefix = params.get("QueueNamePrefix", "")
        with self._lock:
            urls = sorted(q.url for n, q in self._queues.items() if n.startswith(prefix))
        return {"QueueUrls": urls} if urls else {}

    def _purge_queue(self, params: Params) -> Params:
        self._queue(params).purge()
        return {}

    def _delete_queue(self, params: Params) -> Params:
        queue = self._queue(params)
        with self._lock:
            self._queues.pop(queue.name, None)
        queue.close()
        return {}
