"""Lambda scenarios: one SQS event through ``LambdaHandler`` and through Powertools.

Events of 10 and 100 task records, built from messages received from the simulated SQS
(so the queue's client stays in memory). The same events go, in the same process, to
``sqsx_lambda.LambdaHandler`` at 1, 10 and 32 threads and to Powertools'
``BatchProcessor`` + ``process_partial_response``, whose record handler decodes the task
the same way and calls the same function. Handlers: 100 ms of I/O (``time.sleep``), or
nothing. Figures: median milliseconds per invocation and microseconds per record. The
no-op scenarios of one event size run interleaved (one invocation of each in turn).
"""

from __future__ import annotations

import base64
import gc
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from bench.simsqs import SimulatedSqs
from sqsx import Queue, TaskMessage

TASK = "work"


@dataclass(frozen=True)
class LambdaScenario:
    """``records`` per event, a handler of ``handler_ms``, run by ``runner``
    (``"sqsx"`` with ``threads``, or ``"powertools"``)."""

    runner: str
    threads: int
    records: int
    handler_ms: float

    @property
    def name(self) -> str:
        threads = f"{self.threads} thr" if self.threads else "default thr"
        who = f"sqsx {threads}" if self.runner == "sqsx" else "Powertools"
        return f"lambda {self.records} rec x {self.handler_ms:g} ms, {who}"

    @property
    def repeats(self) -> int:
        """Invocations measured: fewer for slow ones; the median is reported."""
        if not self.handler_ms:
            return max(20, 4_000 // self.records)
        serial = self.records * self.handler_ms / 1000 / (self.threads or 1)
        return 1 if serial >= 5 else 3


@dataclass
class LambdaResult:
    scenario: LambdaScenario
    ms_per_invocation: float
    failures: int

    @property
    def us_per_record(self) -> float:
        return self.ms_per_invocation * 1000 / self.scenario.records

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.scenario.name,
            "runner": self.scenario.runner,
            "threads": self.scenario.threads,
            "records": self.scenario.records,
            "handler_ms": self.scenario.handler_ms,
            "ms_per_invocation": self.ms_per_invocation,
            "us_per_record": self.us_per_record,
            "failures": self.failures,
        }


class _Context:
    """The parts of a Lambda context the handlers read."""

    function_name = "sqsx-bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:sqsx-bench"
    memory_limit_in_mb = 1769
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/sqsx-bench"
    log_stream_name = "bench"

    def __init__(self, timeout_ms: int = 900_000) -> None:
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def make_event(sqs: SimulatedSqs, url: str, records: int) -> dict[str, Any]:
    """An SQS event of ``records`` task records received from ``url``."""
    from sqsx_lambda.records import to_lambda

    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sent = Queue(url=url, sqs_client=sqs).send_tasks(
        TaskMessage(TASK, {"n": n}) for n in range(records)
    )
    assert all(result.ok for result in sent)
    messages: list[dict[str, Any]] = []
    while len(messages) < records:
        messages += sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
    return {"Records": [to_lambda(m, event_source_arn=arn) for m in messages]}


def _work_function(handler_ms: float) -> Callable[..., None]:
    seconds = handler_ms / 1000

    def work(n: int) -> None:
        if seconds:
            time.sleep(seconds)

    return work


def _sqsx_invoker(
    sqs: SimulatedSqs, url: str, threads: int, work: Callable[..., None]
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    from sqsx_lambda import LambdaHandler

    queue = Queue(url=url, sqs_client=sqs)
    queue.add_task_handler(TASK, lambda context, **kwargs: work(**kwargs))
    handler = LambdaHandler(queue, max_threads=threads or None)  # 0: the default
    return lambda event: dict(handler(event, _Context()))


def _powertools_invoker(work: Callable[..., None]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    from aws_lambda_powertools.utilities.batch import (
        BatchProcessor,
        EventType,
        process_partial_response,
    )
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    processor = BatchProcessor(event_type=EventType.SQS)

    def record_handler(record: SQSRecord) -> None:
        padded = record.body + "=" * (-len(record.body) % 4)
        work(**json.loads(base64.urlsafe_b64decode(padded))["kwargs"])

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        return dict(
            process_partial_response(
                event=event,
                record_handler=record_handler,
                processor=processor,
                context=cast(Any, _Context()),
            )
        )

    return invoke


def _invoker(
    scenario: LambdaScenario, sqs: SimulatedSqs, url: str
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    work = _work_function(scenario.handler_ms)
    if scenario.runner == "sqsx":
        return _sqsx_invoker(sqs, url, scenario.threads, work)
    return _powertools_invoker(work)


def run_interleaved(
    group: list[LambdaScenario], sqs: SimulatedSqs, url: str, event: dict[str, Any]
) -> list[LambdaResult]:
    """Invoke every scenario of ``group`` on ``event`` in turn, one invocation each per
    round, ``repeats`` rounds (after one warm-up each): a load change on a shared machine
    then hits them all alike, and their ratios hold."""
    invokers = [_invoker(scenario, sqs, url) for scenario in group]
    failures = [len(invoke(event)["batchItemFailures"]) for invoke in invokers]
    timings: list[list[float]] = [[] for _ in group]
    gc.collect()
    for _ in range(max(scenario.repeats for scenario in group)):
        for index, invoke in enumerate(invokers):
            started = time.perf_counter()
            response = invoke(event)
            timings[index].append(time.perf_counter() - started)
            failures[index] += len(response["batchItemFailures"])
    return [
        LambdaResult(scenario, statistics.median(times) * 1000, failed)
        for scenario, times, failed in zip(group, timings, failures, strict=True)
    ]


def run(scenario: LambdaScenario, sqs: SimulatedSqs, url: str, event: dict[str, Any]) -> Any:
    """Invoke ``scenario``'s runner on ``event`` ``repeats`` times (after one warm-up)."""
    invoke = _invoker(scenario, sqs, url)
    failures = len(invoke(event)["batchItemFailures"])  # warm-up: pools, caches
    timings = []
    gc.collect()
    for _ in range(scenario.repeats):
        started = time.perf_counter()
        response = invoke(event)
        timings.append(time.perf_counter() - started)
        failures += len(response["batchItemFailures"])
    return LambdaResult(scenario, statistics.median(timings) * 1000, failures)


def scenarios(quick: bool = False) -> list[LambdaScenario]:
    """The published set: 10 and 100 records, 100 ms, 1 ms and no-op handlers; sqsx at its
    default thread count (``threads`` 0), 1, 10 and 32 threads, and Powertools."""
    result = []
    for handler_ms in (100.0, 1.0, 0.0):
        for records in (10, 100):
            if quick and handler_ms == 100 and records == 100:
                continue
            result += [LambdaScenario("sqsx", t, records, handler_ms) for t in (0, 1, 10, 32)]
            result.append(LambdaScenario("powertools", 1, records, handler_ms))
    return result


def run_all(quick: bool = False) -> list[LambdaResult]:
    """Every Lambda scenario, on events built once per size."""
    sqs = SimulatedSqs(latency_seconds=0)
    url = sqs.create_queue(QueueName="lambda-bench", Attributes={"VisibilityTimeout": "900"})[
        "QueueUrl"
    ]
    events = {n: make_event(sqs, url, n) for n in (10, 100)}
    sqs.latency_seconds = 0.010  # any ChangeMessageVisibilityBatch costs a round trip
    groups: dict[tuple[int, float], list[LambdaScenario]] = {}
    for scenario in scenarios(quick):
        groups.setdefault((scenario.records, scenario.handler_ms), []).append(scenario)
    results: list[LambdaResult] = []
    for (records, handler_ms), group in groups.items():
        if handler_ms:  # long invocations: one scenario after another
            results += [run(scenario, sqs, url, events[records]) for scenario in group]
        else:  # microseconds per record: interleaved, so that their ratios hold
            results += run_interleaved(group, sqs, url, events[records])
    return results
