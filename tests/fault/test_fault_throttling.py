"""Throttling and 5xx: a fifth of all SQS calls fail; every task still finishes, once acked."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from conftest import Consumer, make_client, queue_counts, wait_until
from faultkit import Ledger, send_tasks, work_tasks

from sqsx import Queue

pytestmark = pytest.mark.fault

TASKS = 200
FAIL_RATE = 0.20
#: Part of the failures that happen after SQS did the work (the response is lost).
LOST_RESPONSE_SHARE = 0.25
_ERRORS = (
    (400, "ThrottlingException", "Rate exceeded"),
    (400, "RequestThrottled", "Request is throttled."),
    (500, "InternalError", "We encountered an internal error. Please try again."),
    (503, "ServiceUnavailable", "Service is unavailable. Try again later."),
)


@dataclass
class _Attempt:
    operation: str
    handles: list[str]
    fault: str  # "", "before" (SQS never saw it) or "after" (SQS acted, response lost)


class FaultInjector:
    """botocore hooks on one client that fail about ``rate`` of its SQS calls.

    The first call of each batch operation and of ReceiveMessage always fails, so every
    path is covered whatever the dice say. A failure either replaces the call (SQS never
    sees it) or, for ``LOST_RESPONSE_SHARE`` of them, turns SQS's success into a 5xx.
    """

    def __init__(self, client: Any, rate: float, seed: int) -> None:
        self._random = random.Random(seed)
        self._rate = rate
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()
        self.attempts: list[_Attempt] = []
        events = client.meta.events
        events.register("before-parameter-build.sqs.*", self._decide)
        events.register("before-call.sqs.*", self._fail_before)
        events.register("after-call.sqs.*", self._fail_after)

    def _decide(
        self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        handles = [entry["ReceiptHandle"] for entry in params.get("Entries", ())]
        with self._lock:
            self._seen[model.name] += 1
            always = self._seen[model.name] == 1 and model.name != "GetQueueAttributes"
            fault = ""
            if always or self._random.random() < self._rate:
                fault = "after" if self._random.random() < LOST_RESPONSE_SHARE else "before"
            error = self._random.choice(_ERRORS)
            self.attempts.append(_Attempt(model.name, handles, fault))
        context["fault"] = (fault, error)

    def _fail_before(self, model: Any, context: dict[str, Any], **_: Any) -> Any:
        fault, (status, code, text) = context["fault"]
        if fault != "before":
            return None
        response = AWSResponse("http://127.0.0.1/", status, HTTPHeaders(), None)
        return response, _error_body(code, text, status)

    def _fail_after(
        self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        fault, (status, code, text) = context["fault"]
        if fault == "after" and http_response.status_code < 300:
            http_response.status_code = status
            parsed.clear()
            parsed.update(_error_body(code, text, status))

    def failed(self, operation: str) -> list[_Attempt]:
        """Injected failures of ``operation``."""
        return [a for a in self.attempts if a.operation == operation and a.fault]

    def count(self, operation: str) -> int:
        """Calls of ``operation`` made."""
        return sum(a.operation == operation for a in self.attempts)


def _error_body(code: str, text: str, status: int) -> dict[str, Any]:
    return {
        "Error": {"Code": code, "Message": text},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
    }


def test_every_task_finishes_when_a_fifth_of_sqs_calls_fail(
    endpoint_url: str, sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given 200 tasks, a tenth of which fail once, and a client on which a fifth of all calls
    # fail with throttling or a 5xx (botocore's own retries off, so sqsx sees every one)
    url = make_queue("throttle", VisibilityTimeout=5)
    tasks = work_tasks(TASKS)
    send_tasks(sqs_client, url, tasks)
    flaky = {t["task_id"] for t in tasks[::10]}
    client = make_client(endpoint_url, retries={"total_max_attempts": 1})
    faults = FaultInjector(client, FAIL_RATE, seed=20)
    queue = Queue(url=url, sqs_client=client, min_backoff_seconds=1, max_backoff_seconds=2)
    ledger = Ledger()

    def work(context: dict[str, Any], task_id: str, seconds: float = 0.0) -> None:
        count = int(context["sqs_message"]["Attributes"]["ApproximateReceiveCount"])
        ledger.record("start", task_id, count)
        if task_id in flaky and count == 1:
            raise RuntimeError("fails on its first delivery")
        ledger.record("finish", task_id, count)

    queue.add_task_handler("work", work)

    # When an 8-thread worker consumes them
    consumer = Consumer(queue, max_messages=10, max_threads=8)
    try:
        assert wait_until(
            lambda: (
                len(ledger.tasks("finish")) == TASKS and queue_counts(sqs_client, url) == (0, 0, 0)
            ),
            timeout=90,
            interval=0.2,
        )
    finally:
        consumer.stop(timeout=30)

    # Then every task finished and the queue is empty
    audit = ledger.audit(t["task_id"] for t in tasks)
    assert audit.unfinished == frozenset()

    # And every receipt handle of a failed DeleteMessageBatch was sent again later
    failed_deletes = faults.failed("DeleteMessageBatch")
    assert failed_deletes, "no DeleteMessageBatch failure was injected"
    for failed in failed_deletes:
        index = faults.attempts.index(failed)
        later = {
            handle
            for attempt in faults.attempts[index + 1 :]
            if attempt.operation == "DeleteMessageBatch"
            for handle in attempt.handles
        }
        assert set(failed.handles) <= later, "a failed delete was forgotten"

    # And the failures were real: about a fifth of the calls, of every kind
    injected = sum(bool(a.fault) for a in faults.attempts)
    assert injected >= 0.1 * len(faults.attempts)
    for operation in ("ReceiveMessage", "DeleteMessageBatch", "ChangeMessageVisibilityBatch"):
        assert faults.failed(operation), f"no {operation} failure was injected"

    # And a task ran twice only if its delete was held up past the visibility timeout
    finishes = Counter(c.task_id for c in ledger.calls if c.event == "finish")
    repeated = sum(n - 1 for n in finishes.values())
    failed_entries = sum(len(a.handles) for a in failed_deletes)
    assert repeated <= failed_entries
    print(
        f"\nFAULT-FIGURES throttling tasks={TASKS} lost={len(audit.unfinished)} "
        f"repeated_successes={repeated} calls={len(faults.attempts)} injected={injected} "
        f"lost_responses={sum(a.fault == 'after' for a in faults.attempts)} "
        f"failed_delete_calls={len(failed_deletes)}/{faults.count('DeleteMessageBatch')} "
        f"failed_receives={len(faults.failed('ReceiveMessage'))}/"
        f"{faults.count('ReceiveMessage')} failed_visibility_calls="
        f"{len(faults.failed('ChangeMessageVisibilityBatch'))}/"
        f"{faults.count('ChangeMessageVisibilityBatch')}"
    )
