"""CloudWatch EMF metrics of LambdaHandler (sqsx_lambda.metrics) through Powertools
``Metrics``: the EMF JSON it prints, per invocation, for batches received from moto."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from conftest import lambda_event

from sqsx import NoRetry, Queue, Retry
from sqsx_lambda import LambdaHandler

NAMES = ("RecordsReceived", "RecordsDeleted", "RecordsRetried", "RecordsUnprocessable",
         "RecordsSkipped", "RecordsAbandoned")  # fmt: skip


class Deadline:
    """A Lambda context with a fixed remaining time."""

    function_name = "sqsx-test"

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def one(doc: dict[str, Any], name: str) -> float:
    """The single value of metric ``name`` in an EMF document (Powertools writes a list)."""
    (found,) = doc[name]
    return float(found)


def emf_documents(out: str) -> list[dict[str, Any]]:
    """The EMF documents among the printed lines (each has an ``_aws`` key)."""
    docs = []
    for line in out.splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            if "_aws" in doc:
                docs.append(doc)
    return docs


def _send(queue: Queue, **counts: int) -> None:
    """Register ``ok`` (succeeds), ``again`` (raises Retry) and ``drop`` (raises NoRetry) on
    ``queue`` and send ``counts[task]`` tasks of each named task (``nobody`` has no handler)."""
    queue.add_task_handler("ok", lambda context, n: None)
    queue.add_task_handler("again", lambda context, n: (_ for _ in ()).throw(Retry()))
    queue.add_task_handler("drop", lambda context, n: (_ for _ in ()).throw(NoRetry()))
    for task, count in counts.items():
        for n in range(count):
            queue.add_task(task, n=n)


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    found = Metrics(namespace="SqsxTest", service="orders")
    found.set_default_dimensions(environment="test")
    yield found
    found.clear_metrics()


def test_one_document_per_invocation_counts_each_fate(
    sqs_client: Any,
    make_queue: Callable[..., str],
    handlers: Callable[..., LambdaHandler],
    metrics: Metrics,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given 4 tasks that succeed, 2 that raise Retry, 1 NoRetry and 1 with no handler
    url = make_queue()
    queue = Queue(url=url, sqs_client=sqs_client, min_backoff_seconds=1, max_backoff_seconds=1)
    _send(queue, ok=4, again=2, drop=1, nobody=1)
    event = lambda_event(sqs_client, url, 8)
    capsys.readouterr()

    # When the function runs the batch
    response = handlers(queue, metrics=metrics, max_threads=4)(event, Deadline(60_000))

    # Then exactly one EMF document was printed, in the namespace, with the dimensions
    docs = emf_documents(capsys.readouterr().out)
    assert len(docs) == 1, docs
    (doc,) = docs
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "SqsxTest"
    assert set(directive["Dimensions"][0]) == {"service", "environment", "queue"}
    assert (doc["service"], doc["environment"]) == ("orders", "test")
    assert doc["queue"] == url.rsplit("/", 1)[-1]
    # and the counts are the batch's
    reported = len(response["batchItemFailures"])
    assert reported == 3  # 2 retried + 1 unprocessable (poison_policy="retry")
    counts = {name: one(doc, name) for name in NAMES}
    assert counts == {
        "RecordsReceived": 8.0,
        "RecordsDeleted": 5.0,
        "RecordsRetried": 2.0,
        "RecordsUnprocessable": 1.0,
        "RecordsSkipped": 0.0,
        "RecordsAbandoned": 0.0,
    }
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units["HandlerDuration"] == "Milliseconds" and units["RecordsReceived"] == "Count"
    durations = doc["HandlerDuration"]
    assert isinstance(durations, list) and len(durations) == 7  # every handler that ran
    assert all(0 <= d < 5_000 for d in durations)


def test_skipped_and_abandoned_records_are_counted(
    sqs_client: Any,
    make_queue: Callable[..., str],
    handlers: Callable[..., LambdaHandler],
    metrics: Metrics,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given one stuck record, one fast one, and a deadline that gives up on the stuck one
    url = make_queue(VisibilityTimeout=60)
    release = threading.Event()
    queue = Queue(url=url, sqs_client=sqs_client)
    queue.add_task_handler("stuck", lambda context: release.wait(30))
    queue.add_task_handler("fast", lambda context: None)
    queue.add_task("stuck")
    queue.add_task("fast")
    event = lambda_event(sqs_client, url, 2)
    handler = handlers(queue, metrics=metrics, max_threads=2, deadline_margin_ms=1000)
    capsys.readouterr()
    try:
        # When an invocation gives up on the stuck record, and the next has no time left
        handler(event, Deadline(1400))
        first = emf_documents(capsys.readouterr().out)
        queue.add_task("fast")
        handler(lambda_event(sqs_client, url, 1), Deadline(500))
        second = emf_documents(capsys.readouterr().out)
    finally:
        release.set()

    # Then the first counts one abandoned and one deleted, the second one skipped
    assert [tuple(one(d, n) for n in NAMES) for d in first] == [(2, 1, 0, 0, 0, 1)]
    assert [tuple(one(d, n) for n in NAMES) for d in second] == [(1, 0, 0, 0, 1, 0)]


class BrokenMetrics(Metrics):
    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        raise RuntimeError("the metrics backend is broken")


def test_a_failing_flush_never_reaches_the_response(
    sqs_client: Any,
    make_queue: Callable[..., str],
    handlers: Callable[..., LambdaHandler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = make_queue()
    queue = Queue(url=url, sqs_client=sqs_client)
    queue.add_task_handler("ok", lambda context: None)
    queue.add_task("ok")
    event = lambda_event(sqs_client, url, 1)
    broken = BrokenMetrics(namespace="SqsxTest", service="orders")
    try:
        response = handlers(queue, metrics=broken)(event, Deadline(60_000))
    finally:
        broken.clear_metrics()
    assert response == {"batchItemFailures": []}
    assert "could not flush metrics" in caplog.text


def test_large_batches_record_ten_evenly_spread_durations() -> None:
    from sqsx_lambda.metrics import _spread

    assert _spread([3.0, 1.0]) == [3.0, 1.0]
    spread = _spread([float(n) for n in reversed(range(100))])
    assert len(spread) == 10
    assert spread[0] == 0.0 and spread[-1] == 99.0
    assert spread == sorted(spread) and len(set(spread)) == 10


def test_a_batch_the_inline_pass_deletes_whole_is_counted_from_its_outcomes(
    sqs_client: Any,
    make_queue: Callable[..., str],
    handlers: Callable[..., LambdaHandler],
    metrics: Metrics,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given 3 tasks that succeed, 1 NoRetry and 1 with no handler, which the queue deletes
    url = make_queue()
    queue = Queue(url=url, sqs_client=sqs_client, poison_policy="delete")
    _send(queue, ok=3, drop=1, nobody=1)
    event = lambda_event(sqs_client, url, 5)
    capsys.readouterr()

    # When one thread runs the batch (the inline pass: every record deleted, no RecordResult)
    response = handlers(queue, metrics=metrics, max_threads=1)(event, Deadline(60_000))

    # Then the one document counts the five deleted, one of them unprocessable
    assert response == {"batchItemFailures": []}
    (doc,) = emf_documents(capsys.readouterr().out)
    assert tuple(one(doc, n) for n in NAMES) == (5, 5, 0, 1, 0, 0)
    assert len(doc["HandlerDuration"]) == 4  # the handlers that ran, not the unreadable one


def test_counting_from_outcomes_matches_counting_from_record_results(
    metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the outcomes of an all-deleted invocation, as the inline pass returns them
    from sqsx.message import Message
    from sqsx.outcome import Outcome, Verdict
    from sqsx_lambda.inline import InlineRun
    from sqsx_lambda.metrics import InvocationMetrics
    from sqsx_lambda.records import to_lambda

    verdicts = [Verdict.SUCCEEDED] * 12 + [Verdict.NO_RETRY, Verdict.UNPROCESSABLE]
    outcomes = [Outcome(v, None, handler_seconds=n / 1000) for n, v in enumerate(verdicts)]
    raws = [
        {"MessageId": str(n), "ReceiptHandle": str(n), "Body": "{}", "Attributes": {}}
        for n in range(14)
    ]
    records = [
        to_lambda(raw, event_source_arn="arn:aws:sqs:us-east-1:000000000000:q") for raw in raws
    ]
    ran = InlineRun(
        records,
        [
            (raw, o.handler_seconds)
            if o.verdict is Verdict.SUCCEEDED
            else (Message.from_boto3(raw), o)
            for raw, o in zip(raws, outcomes, strict=True)
        ],
    )
    recorder = InvocationMetrics(metrics)
    capsys.readouterr()

    # When it is recorded from its outcomes, and from its RecordResults
    recorder.record_deleted(ran.outcomes, "http://127.0.0.1:1/000000000000/q")
    recorder.record(ran.results(), "http://127.0.0.1:1/000000000000/q")

    # Then both documents are the same but for their timestamps
    first, second = emf_documents(capsys.readouterr().out)
    for doc in (first, second):
        doc["_aws"].pop("Timestamp")
    assert first == second
    assert tuple(one(first, n) for n in NAMES) == (14, 14, 0, 1, 0, 0)
