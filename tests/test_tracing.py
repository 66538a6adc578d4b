"""OpenTelemetry traces (sqsx.tracing): one trace from a producer process to the worker and
to LambdaHandler, through a moto queue; span attributes, errors and the attribute limits."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import Consumer, lambda_event, wait_until
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from sqsx import Queue
from sqsx.exceptions import NoRetry, Retry
from sqsx.message import Message
from sqsx.sending import OutgoingMessage
from sqsx.tracing import MAX_MESSAGE_ATTRIBUTES, Tracing, producer_context
from sqsx_lambda import LambdaHandler

ROOT = Path(__file__).resolve().parent.parent

# The producer: another process, whose only way to pass its context is the message.
_PRODUCER = """
import json, sys
import boto3
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqsx import Queue
from sqsx.tracing import Tracing

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
client = boto3.client("sqs", endpoint_url=sys.argv[2], region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x")
queue = Queue(url=sys.argv[1], sqs_client=client, hooks=[Tracing(tracer_provider=provider)])
sent = queue.add_task("traced", n=1)
(span,) = exporter.get_finished_spans()
print(json.dumps({"trace_id": span.context.trace_id, "span_id": span.context.span_id,
                  "kind": span.kind.name, "message_id": sent["MessageId"]}))
"""


def send_from_another_process(queue_url: str, endpoint_url: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _PRODUCER, queue_url, endpoint_url],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sent: dict[str, Any] = json.loads(done.stdout)
    return sent


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    found = TracerProvider()
    found.add_span_processor(SimpleSpanProcessor(exporter))
    return found


def traced_queue(
    url: str, client: Any, provider: TracerProvider, ran: list[int], **options: Any
) -> Queue:
    queue = Queue(url=url, sqs_client=client, hooks=[Tracing(tracer_provider=provider, **options)])
    app = provider.get_tracer("app")

    def traced(context: dict[str, Any], n: int) -> None:
        with app.start_as_current_span("work"):
            ran.append(n)
            if n < 0:
                raise ValueError("a negative n")

    queue.add_task_handler("traced", traced)
    return queue


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    (found,) = [span for span in spans if span.name == name]
    return found


@pytest.mark.timeout(90)
def test_a_task_sent_by_another_process_and_run_by_the_worker_is_one_trace(
    sqs_client: Any,
    queue_url: str,
    endpoint_url: str,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    # Given a task sent with tracing by another process
    sent = send_from_another_process(queue_url, endpoint_url)
    assert sent["kind"] == "PRODUCER"
    ran: list[int] = []
    queue = traced_queue(queue_url, sqs_client, provider, ran)

    # When the worker runs it
    consumer = Consumer(queue, max_threads=2)
    assert wait_until(lambda: len(exporter.get_finished_spans()) >= 2, timeout=30)
    consumer.stop()

    # Then its process span continues the producer's trace, and the handler's span is its child
    spans = exporter.get_finished_spans()
    name = queue_url.rsplit("/", 1)[-1]
    process = by_name(spans, f"process {name}")
    work = by_name(spans, "work")
    assert process.context.trace_id == sent["trace_id"] == work.context.trace_id
    assert process.parent is not None and process.parent.span_id == sent["span_id"]
    assert work.parent is not None and work.parent.span_id == process.context.span_id
    assert process.kind is SpanKind.CONSUMER
    assert dict(process.attributes or {}) == {
        "messaging.system": "aws_sqs",
        "messaging.destination.name": name,
        "messaging.message.id": sent["message_id"],
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "aws.sqs.queue.url": queue_url,
        "sqsx.receive_count": 1,
        "sqsx.task": "traced",
        "sqsx.runtime": "worker",
        "sqsx.verdict": "succeeded",
    }
    assert process.status.status_code is StatusCode.UNSET


def run_lambda_batch(
    sqs_client: Any, queue_url: str, endpoint_url: str, provider: TracerProvider,
    ran: list[int], failing: int, **options: Any,
) -> tuple[set[tuple[int, int]], dict[str, Any]]:  # fmt: skip
    """Two tasks sent with tracing by another process and ``failing`` that raise, run by a
    ``LambdaHandler(tracing=True)`` on two threads as one event; the producers' (trace id,
    span id) and the response."""
    sent = [send_from_another_process(queue_url, endpoint_url) for _ in range(2)]
    for _ in range(failing):
        Queue(url=queue_url, sqs_client=sqs_client).add_task("traced", n=-1)
    event = lambda_event(sqs_client, queue_url, 2 + failing)
    queue = traced_queue(queue_url, sqs_client, provider, ran, **options)
    handler = LambdaHandler(queue, tracing=True, max_threads=2)
    try:
        response: dict[str, Any] = dict(handler(event))
    finally:
        handler.close()
    return {(s["trace_id"], s["span_id"]) for s in sent}, response


@pytest.mark.timeout(90)
def test_lambda_makes_one_invocation_span_linked_to_each_record(
    sqs_client: Any,
    queue_url: str,
    endpoint_url: str,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    # Given two tasks sent with tracing by another process, and one that raises, when the
    # function runs them as one batch on two threads
    ran: list[int] = []
    producers, response = run_lambda_batch(
        sqs_client, queue_url, endpoint_url, provider, ran, failing=1
    )

    # Then there is one span for the invocation and none per record: it links to both
    # producers, and the handlers' spans are its children
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert len(failed) == 1 and sorted(ran) == [-1, 1, 1]
    spans = exporter.get_finished_spans()
    name = queue_url.rsplit("/", 1)[-1]
    (invocation,) = [s for s in spans if s.name == f"process {name}"]
    links = {(link.context.trace_id, link.context.span_id) for link in invocation.links}
    assert links == producers
    assert (invocation.attributes or {})["messaging.batch.message_count"] == 3
    assert invocation.kind is SpanKind.CONSUMER
    work = [s for s in spans if s.name == "work"]
    assert len(work) == 3
    assert {s.parent.span_id if s.parent else 0 for s in work} == {invocation.context.span_id}
    # And the record that raised is an exception event on it, with its message id
    (event_,) = invocation.events
    assert event_.name == "exception"
    assert (event_.attributes or {})["messaging.message.id"] == failed[0]
    assert (event_.attributes or {})["exception.type"] == "ValueError"
    assert invocation.status.status_code is StatusCode.ERROR


@pytest.mark.timeout(90)
def test_lambda_record_spans_continue_each_record_s_trace(
    sqs_client: Any,
    queue_url: str,
    endpoint_url: str,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    # Given two tasks sent with tracing by another process, and a hook asked for a span
    # per record in Lambda too, when the function runs them as one batch
    ran: list[int] = []
    producers, response = run_lambda_batch(
        sqs_client, queue_url, endpoint_url, provider, ran, failing=0, lambda_record_spans=True
    )

    # Then the invocation span links to both producers, and each record's process span
    # continues its own producer's trace
    assert response == {"batchItemFailures": []}
    spans = exporter.get_finished_spans()
    name = queue_url.rsplit("/", 1)[-1]
    invocation = [s for s in spans if s.name == f"process {name}" and s.links]
    assert len(invocation) == 1
    links = {(link.context.trace_id, link.context.span_id) for link in invocation[0].links}
    assert links == producers
    records = [s for s in spans if s.name == f"process {name}" and not s.links]
    assert {(s.context.trace_id, s.parent.span_id if s.parent else 0) for s in records} == links
    assert {(s.attributes or {})["sqsx.runtime"] for s in records} == {"lambda"}
    assert len(ran) == 2


def _process(queue: Queue, n: int = 1) -> None:
    raw = {
        "MessageId": f"m{n}",
        "ReceiptHandle": "r",
        "Body": "eyJrd2FyZ3MiOiB7fX0=",  # base64 of {"kwargs": {}}
        "Attributes": {"ApproximateReceiveCount": "3"},
        "MessageAttributes": {"TaskName": {"DataType": "String", "StringValue": "job"}},
    }
    queue.dispatcher.process(Message.from_boto3(raw))


@pytest.mark.parametrize(
    ("raised", "status", "events"),
    [
        pytest.param(None, StatusCode.UNSET, [], id="success"),
        pytest.param(Retry(), StatusCode.UNSET, [], id="retry-is-not-an-error"),
        pytest.param(NoRetry(), StatusCode.UNSET, [], id="noretry-is-not-an-error"),
        pytest.param(ValueError("boom"), StatusCode.ERROR, ["exception"], id="exception"),
    ],
)
def test_an_exception_is_an_error_event_and_retry_signals_are_not(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    raised: BaseException | None,
    status: StatusCode,
    events: list[str],
) -> None:
    queue = offline_queue(provider)

    def job(context: dict[str, Any]) -> None:
        if raised is not None:
            raise raised

    queue.add_task_handler("job", job)
    _process(queue)
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is status
    assert [event.name for event in span.events] == events
    if events:
        assert (span.events[0].attributes or {})["exception.type"] == "ValueError"
    assert (span.attributes or {})["sqsx.receive_count"] == 3


def test_an_unknown_task_is_an_error_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    queue = offline_queue(provider)
    _process(queue)
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["sqsx.verdict"] == "unprocessable"
    assert (span.attributes or {})["sqsx.task"] == "-"


def test_in_a_lambda_invocation_an_unknown_task_is_an_event_on_its_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # Given an invocation span over two records: one of a known task, one of none
    queue = offline_queue(provider)
    queue.add_task_handler("known", lambda context: None)
    tracing = queue.hooks[0]
    assert isinstance(tracing, Tracing)
    known, unknown = (
        Message.from_boto3({
            "MessageId": f"m-{task}", "ReceiptHandle": "r", "Body": "eyJrd2FyZ3MiOiB7fX0=",
            "MessageAttributes": {"TaskName": {"DataType": "String", "StringValue": task}},
        })
        for task in ("known", "job")
    )  # fmt: skip

    # When the core processes both within it, in the Lambda runtime
    with tracing.invocation_span([known, unknown], "jobs"):
        outcomes = [queue.dispatcher.process(m, runtime="lambda") for m in (known, unknown)]

    # Then the only span is the invocation's: an event names the unprocessable record
    assert [o.verdict.value for o in outcomes] == ["succeeded", "unprocessable"]
    (span,) = exporter.get_finished_spans()
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
        ("unprocessable message", {"messaging.message.id": "m-job"})
    ]
    assert span.status.status_code is StatusCode.ERROR


def _attributes(count: int) -> dict[str, dict[str, str]]:
    return {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(count)}


@pytest.mark.parametrize(
    ("count", "limit", "carried"),
    [
        pytest.param(0, 1024, True, id="room"),
        pytest.param(MAX_MESSAGE_ATTRIBUTES - 1, 1024, True, id="the-tenth-attribute"),
        pytest.param(MAX_MESSAGE_ATTRIBUTES, 1024, False, id="already-ten"),
        pytest.param(0, 60, False, id="over-the-size-limit"),
    ],
)
def test_traceparent_is_carried_only_within_sqs_limits(
    provider: TracerProvider, count: int, limit: int, carried: bool
) -> None:
    # SQS: at most 10 message attributes, and name + type + value count toward the size
    # limit (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/
    # sqs-message-metadata.html)
    outgoing = OutgoingMessage("x" * 20, _attributes(count))
    sent = Tracing(tracer_provider=provider, max_message_bytes=limit).before_send(outgoing)
    assert ("traceparent" in sent.attributes) is carried
    assert len(sent.attributes) <= MAX_MESSAGE_ATTRIBUTES
    assert sent.size <= max(limit, outgoing.size)
    if carried:
        assert sent.attributes["traceparent"]["StringValue"].startswith("00-")


def test_the_aws_trace_header_is_read_when_there_is_no_traceparent() -> None:
    raw = {
        "MessageId": "m",
        "Attributes": {
            "AWSTraceHeader": "Root=1-5759e988-bd862e3fe1be46a994272793;"
            "Parent=53995c3f42cd8ad8;Sampled=1"
        },
    }
    found = producer_context(Message.from_boto3(raw))
    assert found is not None
    assert found.trace_id == 0x5759E988BD862E3FE1BE46A994272793
    assert found.span_id == 0x53995C3F42CD8AD8
    assert found.trace_flags.sampled
    assert producer_context(Message.from_boto3({"MessageId": "m"})) is None
    garbled = {"MessageId": "m", "Attributes": {"AWSTraceHeader": "Root=nothing"}}
    assert producer_context(Message.from_boto3(garbled)) is None


def test_spans_end_in_the_thread_that_ran_the_handler(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # Given spans opened by 8 threads at once: each handler's context is its own
    queue = offline_queue(provider)
    app = provider.get_tracer("app")
    queue.add_task_handler("job", lambda context: app.start_span("inner").end())
    threads = [threading.Thread(target=_process, args=(queue, n)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    spans = exporter.get_finished_spans()
    process = {s.context.span_id: s for s in spans if s.name.startswith("process")}
    inner = [s for s in spans if s.name == "inner"]
    assert len(process) == 8 and len(inner) == 8
    assert {s.parent.span_id for s in inner if s.parent} == set(process)


def test_without_tracing_nothing_of_opentelemetry_or_prometheus_is_imported() -> None:
    code = (
        "import sys, sqsx, sqsx_lambda, sqsx.queue, sqsx_lambda.handler; "
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', "
        "'prometheus_client', 'aws_lambda_powertools.metrics'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def offline_queue(provider: TracerProvider) -> Queue:
    """A traced queue whose messages are handed to its dispatcher directly (no server)."""
    return Queue(url="http://127.0.0.1:9/000000000000/jobs", sqs_client=_no_client(),
                 hooks=[Tracing(tracer_provider=provider)])  # fmt: skip


def _no_client() -> Any:
    import boto3

    return boto3.client("sqs", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip


def test_an_async_handler_s_spans_join_the_process_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # Given an async handler (run on sqsx's event loop thread) that opens a span
    queue = offline_queue(provider)
    app = provider.get_tracer("app")

    async def job(context: dict[str, Any]) -> None:
        with app.start_as_current_span("async-inner"):
            pass

    queue.add_task_handler("job", job)
    _process(queue)
    spans = exporter.get_finished_spans()
    inner = by_name(spans, "async-inner")
    process = next(s for s in spans if s.name.startswith("process"))
    assert inner.parent is not None and inner.parent.span_id == process.context.span_id


def test_in_lambda_an_async_handler_s_spans_are_children_of_the_invocation_span(
    sqs_client: Any, queue_url: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # Given async handlers (run on sqsx's event loop thread) that open a span, and a
    # sync one, run by LambdaHandler(tracing=True) on two threads
    queue = Queue(url=queue_url, sqs_client=sqs_client, hooks=[Tracing(tracer_provider=provider)])
    app = provider.get_tracer("app")

    async def job(context: dict[str, Any], n: int) -> None:
        await asyncio.sleep(0.01)
        with app.start_as_current_span("async-inner"):
            await asyncio.sleep(0)

    def plain(context: dict[str, Any], n: int) -> None:
        with app.start_as_current_span("sync-inner"):
            pass

    queue.add_task_handler("job", job)
    queue.add_task_handler("plain", plain)
    for n in range(3):
        queue.add_task("job", n=n)
    queue.add_task("plain", n=9)
    handler = LambdaHandler(queue, tracing=True, max_threads=2)
    try:
        response = dict(handler(lambda_event(sqs_client, queue_url, 4)))
    finally:
        handler.close()

    # Then every handler's span is a child of the one invocation span
    assert response == {"batchItemFailures": []}
    spans = exporter.get_finished_spans()
    (invocation,) = [s for s in spans if s.name.startswith("process")]
    inner = [s for s in spans if s.name.endswith("-inner")]
    assert sorted(s.name for s in inner) == ["async-inner"] * 3 + ["sync-inner"]
    assert {s.parent.span_id if s.parent else 0 for s in inner} == {invocation.context.span_id}
    assert {s.context.trace_id for s in inner} == {invocation.context.trace_id}


def test_lambda_records_run_inline_are_traced_on_the_invocation_span(
    sqs_client: Any, queue_url: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # Given fast records (the inline pass takes them: nothing but the Tracing hook runs
    # around their handler) and one of a task nobody handles, deleted by the poison policy
    queue = Queue(
        url=queue_url, sqs_client=sqs_client, hooks=[Tracing(tracer_provider=provider)],
        poison_policy="delete",
    )  # fmt: skip
    app = provider.get_tracer("app")
    threads: set[int] = set()

    def fast(context: dict[str, Any], n: int) -> None:
        threads.add(threading.get_ident())
        with app.start_as_current_span("inner"):
            pass

    queue.add_task_handler("fast", fast)
    for n in range(3):
        queue.add_task("fast", n=n)
    Queue(url=queue_url, sqs_client=sqs_client).add_task("nobody", n=0)
    event = lambda_event(sqs_client, queue_url, 4)
    handler = LambdaHandler(queue, tracing=True, max_threads=1)
    try:
        response = dict(handler(event))
    finally:
        handler.close()

    # Then they ran in the invoking thread, their spans are the invocation span's
    # children, and the unprocessable record is an event on it, by message id
    assert response == {"batchItemFailures": []}
    assert threads == {threading.get_ident()}
    spans = exporter.get_finished_spans()
    (invocation,) = [s for s in spans if s.name.startswith("process")]
    inner = [s for s in spans if s.name == "inner"]
    assert len(inner) == 3
    assert {s.parent.span_id if s.parent else 0 for s in inner} == {invocation.context.span_id}
    nobody = next(
        r["messageId"] for r in event["Records"]
        if r["messageAttributes"]["TaskName"]["stringValue"] == "nobody"
    )  # fmt: skip
    assert [(e.name, dict(e.attributes or {})) for e in invocation.events] == [
        ("unprocessable message", {"messaging.message.id": nobody})
    ]
    assert invocation.status.status_code is StatusCode.ERROR
    assert (invocation.attributes or {})["messaging.batch.message_count"] == 4


def test_each_message_of_a_batch_send_carries_its_own_create_span(
    sqs_client: Any, queue_url: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    # Given a traced queue on moto
    from sqsx import RawQueue, TaskMessage

    queue = Queue(url=queue_url, sqs_client=sqs_client, hooks=[Tracing(tracer_provider=provider)])
    raw = RawQueue(queue_url, lambda url, message: None, sqs_client,
                   hooks=[Tracing(tracer_provider=provider)])  # fmt: skip

    # When three tasks go in one batch and one raw message with add_message
    results = queue.send_tasks(TaskMessage("traced", {"n": n}) for n in range(3))
    raw.add_message("plain")
    assert all(result.ok for result in results)

    # Then four create spans, each the parent context its own message carries
    creates = [s for s in exporter.get_finished_spans() if s.name == "create"]
    assert len(creates) == 4 and all(s.kind is SpanKind.PRODUCER for s in creates)
    received: list[dict[str, Any]] = []
    assert wait_until(lambda: bool(received.extend(sqs_client.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
        WaitTimeSeconds=1).get("Messages", []))) or len(received) >= 4, timeout=15)  # fmt: skip
    carried = {(c.trace_id, c.span_id) for c in
               (producer_context(Message.from_boto3(m)) for m in received) if c}  # fmt: skip
    assert carried == {(s.context.trace_id, s.context.span_id) for s in creates}


_VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize(
    ("traceparent", "tracestate"),
    [
        pytest.param(_VALID, None, id="valid"),
        pytest.param(_VALID, "vendor=a,other=b", id="with-tracestate"),
        pytest.param(_VALID[:-2] + "00", None, id="not-sampled"),
        pytest.param(_VALID[:-2] + "ff", None, id="every-flag"),
        pytest.param(_VALID[:3] + "g" + _VALID[4:], None, id="non-hex-in-trace-id"),
        pytest.param(_VALID[:-1] + " ", None, id="55-characters-not-canonical"),
        pytest.param(" \t" + _VALID + " ", None, id="blanks-around"),
        pytest.param(_VALID.upper(), None, id="uppercase"),
        pytest.param("ff" + _VALID[2:], None, id="version-ff"),
        pytest.param(_VALID + "-extra", None, id="version-00-with-more"),
        pytest.param("01" + _VALID[2:] + "-extra", None, id="later-version-with-more"),
        pytest.param("00-" + "0" * 32 + "-b7ad6b7169203331-01", None, id="zero-trace-id"),
        pytest.param(_VALID[:36] + "0" * 16 + "-01", None, id="zero-span-id"),
        pytest.param("01" + _VALID[2:] + "-" + "x" * 500, None, id="over-512-characters"),
        pytest.param(_VALID, "x=" + "y" * 600, id="tracestate-over-512"),
        pytest.param("00-0af76519-b7ad6b7169203331-01", None, id="short-trace-id"),
        pytest.param("", None, id="empty"),
    ],
)
def test_traceparent_is_read_as_opentelemetry_s_propagator_reads_it(
    traceparent: str, tracestate: str | None
) -> None:
    # Given a message carrying this traceparent (and tracestate)
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    attributes = {"traceparent": {"DataType": "String", "StringValue": traceparent}}
    carrier = {"traceparent": traceparent}
    if tracestate is not None:
        attributes["tracestate"] = {"DataType": "String", "StringValue": tracestate}
        carrier["tracestate"] = tracestate
    message = Message.from_boto3({"MessageId": "m", "MessageAttributes": attributes})

    # When sqsx reads it, and OpenTelemetry's own propagator does
    found = producer_context(message)
    context = TraceContextTextMapPropagator().extract(carrier)
    expected = trace.get_current_span(context).get_span_context()

    # Then both agree: the same span context, or none
    if not expected.is_valid:
        assert found is None
    else:
        assert found == expected
        assert found.is_remote and found.trace_state == expected.trace_state
