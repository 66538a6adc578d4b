"""An in-memory SQS for unit tests and benchmarks: ``SimulatedSqs``.

It has the boto3 SQS client's method signatures and response shapes for the calls sqsx
makes, and those a test needs to set a queue up, so a ``Queue`` runs on it unchanged::

    from sqsx import Queue
    from sqsx.testing import SimulatedSqs

    sqs = SimulatedSqs(latency_seconds=0)
    url = sqs.create_queue(QueueName="tasks")["QueueUrl"]
    queue = Queue(url=url, sqs_client=sqs)

Simulated: standard queues; visibility timeouts and ``ApproximateReceiveCount``; long
polling (``WaitTimeSeconds``); ``DelaySeconds``; a ``RedrivePolicy`` moving a message to
its dead-letter queue after ``maxReceiveCount`` receives; batch entry failures; SQS errors
as botocore ``ClientError`` with SQS's codes (``AWS.SimpleQueueService.NonExistentQueue``,
``ReceiptHandleIsInvalid``...); parameters checked as boto3 checks them. Every call takes
``latency_seconds`` without holding a lock, so concurrent calls overlap like network
calls, and does O(log n) work at any queue depth. ``call_counts()`` and ``report()``
count calls by operation and deliveries and deletes per message, so a test can tell lost
messages from duplicates; ``advance_time()`` ends visibility timeouts without waiting.

Not simulated: FIFO queues (``create_queue`` raises ``NotImplementedError``), retention
expiry, permissions, tags, throttling. Where moto and SQS differ, it follows SQS: a
message's size is counted in bytes; a visibility change with a receipt handle older than
the message's latest receive is accepted and ignored; one for a deleted message is refused
with ``InvalidParameterValue``. The test suite runs the same calls on it and on moto's
server.
"""

from sqsx.testing._client import SimulatedSqs
from sqsx.testing._store import QueueReport
from sqsx.testing._wire import attributes_md5

__all__ = ["QueueReport", "SimulatedSqs", "attributes_md5"]
