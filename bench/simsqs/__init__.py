"""An in-memory SQS for the benchmarks: ``SimulatedSqs`` (not part of the installed package).

Why it lives in ``bench/`` and not in the wheel (it was ``sqsx.testing``): it exists so the
polling and Lambda benchmarks can run 20,000 queued tasks at a chosen per-call latency,
which no real local server can (moto re-reads the whole queue on every call). A test
double that ships makes a promise of fidelity to every user's tests, and this one keeps it
only for the calls the benchmarks make: no FIFO queues, permissions, throttling or
retention. Users' own tests are better served by a real server (``sqsx local``, moto,
LocalStack) or by ``Queue.process(message)``, which runs one message through the core
without any SQS call. Keeping it here also keeps about 970 lines out of the wheel.

What it does follow is the Amazon SQS API Reference (see ``_wire``): error codes and
``SenderFault``, the characters a body may hold, at most ten message attributes with
valid names and types, and sizes counted as SQS counts them (UTF-8 bytes of the body and
of every attribute's name, type and value), computed here and not with sqsx's own
``codec.message_size``, so a sizing bug in sqsx cannot hide behind it.
``tests/test_testing_client.py`` runs its cases on it and on the test suite's real server
(the ``endpoint_url`` fixture) with the same assertions.

    from bench.simsqs import SimulatedSqs
    from sqsx import Queue

    sqs = SimulatedSqs(latency_seconds=0)
    url = sqs.create_queue(QueueName="tasks")["QueueUrl"]
    queue = Queue(url=url, sqs_client=sqs)

Simulated: standard queues; visibility timeouts and ``ApproximateReceiveCount``; long
polling (``WaitTimeSeconds``); ``DelaySeconds``; a ``RedrivePolicy`` moving a message to
its dead-letter queue after ``maxReceiveCount`` receives; batch entry failures; SQS errors
as botocore ``ClientError`` with SQS's codes; parameters checked as boto3 checks them.
Every call takes ``latency_seconds`` without holding a lock, so concurrent calls overlap
like network calls, and does O(log n) work at any queue depth. ``call_counts()`` and
``report()`` count calls by operation and deliveries and deletes per message, so a
benchmark can tell lost messages from duplicates; ``advance_time()`` ends visibility
timeouts without waiting.

Not simulated: FIFO queues (``create_queue`` raises ``NotImplementedError``), retention
expiry, permissions, tags, throttling. Where a server and SQS differ, it follows SQS: a
visibility change with a receipt handle older than the message's latest receive is
accepted and ignored; one for a deleted message is refused with ``InvalidParameterValue``.
"""

from bench.simsqs._client import SimulatedSqs
from bench.simsqs._store import QueueReport
from bench.simsqs._wire import attributes_md5

__all__ = ["QueueReport", "SimulatedSqs", "attributes_md5"]
