"""Prometheus metrics (sqsx.metrics): scraped over HTTP from a worker draining a moto queue."""

from __future__ import annotations

import collections
import threading
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from conftest import Consumer, make_client, wait_until
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from sqsx import Queue
from sqsx.exceptions import Retry
from sqsx.message import Message
from sqsx.metrics import PrometheusMetrics, queue_name

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """GET /metrics on 127.0.0.1 and parse it with prometheus_client's own parser."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name`` over every sample whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= set(got))


@pytest.fixture
def metrics() -> Any:
    found = PrometheusMetrics(registry=CollectorRegistry())
    yield found
    found.close()


@pytest.mark.timeout(90)
def test_a_scrape_while_draining_counts_what_happened(
    sqs_client: Any, queue_url: str, metrics: PrometheusMetrics
) -> None:
    # Given 50 tasks that succeed and 5 that raise Retry on their first delivery, a worker
    # with the metrics hook, its client instrumented, the depth sampled and /metrics served
    queue = Queue(url=queue_url, sqs_client=sqs_client, min_backoff_seconds=1,
                  max_backoff_seconds=1, hooks=[metrics])  # fmt: skip
    ran: collections.Counter[tuple[str, str]] = collections.Counter()
    lock = threading.Lock()

    def ok(context: dict[str, Any], n: int) -> None:
        with lock:
            ran["ok", "succeeded"] += 1

    def flaky(context: dict[str, Any], n: int) -> None:
        first = int(context["sqs_message"]["Attributes"]["ApproximateReceiveCount"]) == 1
        with lock:
            ran["flaky", "retried" if first else "succeeded"] += 1
        if first:
            raise Retry(min_backoff_seconds=1, max_backoff_seconds=1)

    queue.add_task_handler("ok", ok)
    queue.add_task_handler("flaky", flaky)
    for n in range(50):
        queue.add_task("ok", n=n)
    for n in range(5):
        queue.add_task("flaky", n=n)
    metrics.instrument_client(sqs_client)
    server = metrics.serve(0)
    port = server.server_port
    try:
        sampler = metrics.watch(queue, interval=1)
        name = queue_name(queue_url)
        assert wait_until(lambda: value(scrape(port), "sqsx_queue_messages", queue=name,
                                        state="visible") == 55, timeout=10)  # fmt: skip

        # When the worker drains the queue (scraped while it runs)
        consumer = Consumer(queue, max_threads=10, max_messages=10)
        mid_run = scrape(port)
        done = wait_until(lambda: ran["flaky", "succeeded"] >= 5 and ran["ok", "succeeded"] >= 50,
                          timeout=45)  # fmt: skip
        consumer.stop()
        assert done, ran
        sampler.sample()
        samples = scrape(port)
    finally:
        server.shutdown()

    # Then the counters are what the handlers saw (moto may deliver a message twice: the
    # handlers' own counts are the truth), at least 50 succeeded and 5 retried
    assert "sqsx_worker_info" in {n for n, _ in mid_run}
    for (task, verdict), count in ran.items():
        assert value(samples, "sqsx_messages_total", queue=name, task=task,
                     verdict=verdict) == count, (task, verdict)  # fmt: skip
    assert value(samples, "sqsx_messages_total", queue=name, task="ok", verdict="succeeded") >= 50
    assert value(samples, "sqsx_messages_total", queue=name, task="flaky", verdict="retried") >= 5
    handled = sum(ran.values())
    assert (
        value(samples, "sqsx_handler_duration_seconds_count", queue=name, task="ok")
        == ran["ok", "succeeded"]
    )
    assert total(samples, "sqsx_handler_duration_seconds_count") == handled
    assert total(samples, "sqsx_message_age_seconds_count") == handled
    assert value(samples, "sqsx_messages_in_progress", queue=name) == 0
    assert value(samples, "sqsx_messages_waiting", queue=name) == 0
    # SQS calls by operation: receives, batched deletes, a visibility change per retry batch
    assert value(samples, "sqsx_sqs_calls_total", operation="ReceiveMessage") >= 6
    deletes = value(samples, "sqsx_sqs_calls_total", operation="DeleteMessageBatch")
    assert 1 <= deletes < handled  # batched, not one per message
    assert value(samples, "sqsx_sqs_calls_total", operation="ChangeMessageVisibilityBatch") >= 1
    assert value(samples, "sqsx_sqs_calls_total", operation="GetQueueAttributes") >= 2
    assert total(samples, "sqsx_sqs_errors_total") == 0
    # and the depth sampled after the drain
    assert value(samples, "sqsx_queue_messages", queue=name, state="visible") == 0
    assert value(samples, "sqsx_queue_messages", queue=name, state="in_flight") == 0
    assert value(samples, "sqsx_queue_depth_sampled_timestamp_seconds", queue=name) > 0


def test_sqs_errors_are_counted_by_operation_and_code(
    endpoint_url: str, metrics: PrometheusMetrics
) -> None:
    # Given an instrumented client of the moto server, and one of a closed port
    client = make_client(endpoint_url)
    down = make_client("http://127.0.0.1:9", retries={"max_attempts": 1}, connect_timeout=1)
    metrics.instrument_client(client)
    metrics.instrument_client(down)

    # When a call names a queue that does not exist, and a call finds no server
    with pytest.raises(ClientError):
        client.get_queue_attributes(
            QueueUrl=f"{endpoint_url}/000000000000/missing", AttributeNames=["All"]
        )
    with pytest.raises(EndpointConnectionError):
        down.get_queue_url(QueueName="any")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.registry.collect()
        for s in family.samples
    }

    # Then each is one call and one error, with SQS's error code or the exception's name
    assert value(samples, "sqsx_sqs_calls_total", operation="GetQueueAttributes") == 1
    codes = {dict(labels)["code"] for (n, labels), v in samples.items()
             if n == "sqsx_sqs_errors_total" and v}  # fmt: skip
    assert any("NonExistentQueue" in c or "QueueDoesNotExist" in c for c in codes), codes
    assert value(samples, "sqsx_sqs_calls_total", operation="GetQueueUrl") == 1
    assert "EndpointConnectionError" in codes, codes


def test_unknown_task_names_fold_into_one_label(metrics: PrometheusMetrics) -> None:
    # Given a queue whose only handler is "known"
    url = "http://127.0.0.1:9/000000000000/jobs"
    queue = Queue(url=url, sqs_client=make_client("http://127.0.0.1:9"), hooks=[metrics])
    queue.add_task_handler("known", lambda context: None)

    # When 20 messages with 20 different unknown task names are processed
    for n in range(20):
        raw = {
            "MessageId": f"m{n}",
            "ReceiptHandle": "r",
            "Body": "eyJrd2FyZ3MiOiB7fX0=",  # base64 of {"kwargs": {}}
            "MessageAttributes": {"TaskName": {"DataType": "String", "StringValue": f"t{n}"}},
        }
        queue.dispatcher.process(Message.from_boto3(raw))

    # Then they share one label value, "-", and no message-derived label exists
    families = {f.name: f for f in metrics.registry.collect()}
    labels = {tuple(sorted(s.labels.items())) for s in families["sqsx_messages"].samples
              if s.name == "sqsx_messages_total"}  # fmt: skip
    assert labels == {(("queue", "jobs"), ("task", "-"), ("verdict", "unprocessable"))}


def test_a_second_instance_on_one_registry_is_refused() -> None:
    registry = CollectorRegistry()
    PrometheusMetrics(registry=registry)
    with pytest.raises(ValueError, match="sqsx_"):
        PrometheusMetrics(registry=registry)


def test_the_listener_binds_127_0_0_1_by_default(metrics: PrometheusMetrics) -> None:
    server = metrics.serve(0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()


def test_no_body_attribute_or_unknown_name_reaches_a_label(metrics: PrometheusMetrics) -> None:
    # Given messages carrying a sentinel in their body, an attribute and an unknown task name
    import base64
    import json

    from prometheus_client import generate_latest

    sentinel = "SENTINEL-7f3a"
    url = "http://127.0.0.1:9/000000000000/jobs"
    queue = Queue(url=url, sqs_client=make_client("http://127.0.0.1:9"), hooks=[metrics])
    queue.add_task_handler("known", lambda context, secret: None)
    body = base64.b64encode(json.dumps({"kwargs": {"secret": sentinel}}).encode()).decode()
    for n, task in enumerate(("known", f"{sentinel}-task")):
        raw = {
            "MessageId": f"m{n}",
            "ReceiptHandle": "r",
            "Body": body,
            "MessageAttributes": {
                "TaskName": {"DataType": "String", "StringValue": task},
                "note": {"DataType": "String", "StringValue": sentinel},
            },
        }
        queue.dispatcher.process(Message.from_boto3(raw))

    # When the registry is exposed, Then the sentinel is nowhere in it
    exposition = generate_latest(metrics.registry).decode()
    assert 'task="known"' in exposition and 'task="-"' in exposition
    assert sentinel not in exposition


@pytest.mark.timeout(60)
def test_messages_waiting_for_a_thread_and_in_progress_are_gauged(
    sqs_client: Any, queue_url: str, metrics: PrometheusMetrics
) -> None:
    # Given one handler thread blocked on its first message, and 10 more messages
    release = threading.Event()
    started = threading.Event()
    queue = Queue(url=queue_url, sqs_client=sqs_client, hooks=[metrics])

    def job(context: dict[str, Any], n: int) -> None:
        started.set()
        release.wait(30)

    queue.add_task_handler("job", job)
    for n in range(11):
        queue.add_task("job", n=n)
    metrics.watch(queue, interval=30)
    name = queue_name(queue_url)

    def gauge(metric: str) -> float:
        return float(metrics.registry.get_sample_value(metric, {"queue": name}) or 0)

    # When the worker has received more than its one thread can run
    consumer = Consumer(queue, max_threads=1, max_messages=10)
    try:
        assert started.wait(20)
        assert wait_until(lambda: gauge("sqsx_messages_waiting") >= 1, timeout=20)

        # Then one runs, the others wait in the worker
        assert gauge("sqsx_messages_in_progress") == 1
        assert 1 <= gauge("sqsx_messages_waiting") <= 10
    finally:
        release.set()
        consumer.stop(30)
    assert gauge("sqsx_messages_in_progress") == 0
    assert gauge("sqsx_messages_waiting") == 0
