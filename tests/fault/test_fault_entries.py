"""One batch entry refused again and again must not hold back the other entries.

A botocore hook on the worker's client takes one receipt handle out of every
DeleteMessageBatch (or ChangeMessageVisibilityBatch) request before it is sent, and adds
it to the response's ``Failed`` list with ``InternalError`` (``SenderFault: false``), as
SQS reports an entry it could not process. The other entries reach the real server.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from conftest import Consumer, make_client, queue_counts, wait_until
from faultkit import Ledger, send_tasks, work_tasks

from sqsx import Queue

pytestmark = pytest.mark.fault


class EntryRefuser:
    """Refuses, in every ``operation`` request, the entry of one receipt handle: the first
    handle of the first request, or ``handle`` once set."""

    def __init__(self, client: Any, operation: str, code: str = "InternalError") -> None:
        self.operation = operation
        self.code = code
        self.handle: str | None = None
        self.refusals = 0
        self.calls = 0
        self._lock = threading.Lock()
        events = client.meta.events
        events.register(f"before-parameter-build.sqs.{operation}", self._take_out)
        events.register(f"before-call.sqs.{operation}", self._answer_alone)
        events.register(f"after-call.sqs.{operation}", self._add_failure)

    def _take_out(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        entries = params["Entries"]
        with self._lock:
            self.calls += 1
            if self.handle is None:
                self.handle = entries[0]["ReceiptHandle"]
            refused = [e["Id"] for e in entries if e["ReceiptHandle"] == self.handle]
            self.refusals += len(refused)
        context["refused"] = refused
        context["alone"] = len(refused) == len(entries)
        if refused and not context["alone"]:
            params["Entries"] = [e for e in entries if e["ReceiptHandle"] != self.handle]

    def _failed(self, context: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"Id": i, "Code": self.code, "Message": "injected", "SenderFault": False}
            for i in context["refused"]
        ]

    def _answer_alone(self, context: dict[str, Any], **_: Any) -> Any:
        if not context["alone"]:
            return None  # the others go to the server
        response = AWSResponse("http://127.0.0.1/", 200, HTTPHeaders(), None)
        return response, {
            "Successful": [],
            "Failed": self._failed(context),
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }

    def _add_failure(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if context["refused"] and not context["alone"]:
            parsed.setdefault("Failed", []).extend(self._failed(context))


def _run(
    endpoint_url: str, sqs_client: Any, url: str, operation: str, tasks: int, threads: int
) -> tuple[Ledger, EntryRefuser, dict[str, str]]:
    """Consume ``url`` (``tasks`` tasks) with ``operation`` refused for one handle, until
    every task finished and the queue is empty."""
    client = make_client(endpoint_url, retries={"total_max_attempts": 1})
    refuser = EntryRefuser(client, operation)
    queue = Queue(url=url, sqs_client=client, min_backoff_seconds=1, max_backoff_seconds=2)
    ledger = Ledger()
    handles: dict[str, str] = {}  # receipt handle -> task id

    def work(
        context: dict[str, Any], task_id: str, seconds: float = 0.0, fail_first: bool = False
    ) -> None:
        message = context["sqs_message"]
        handles[message["ReceiptHandle"]] = task_id
        count = int(message["Attributes"]["ApproximateReceiveCount"])
        ledger.record("start", task_id, count)
        if fail_first and count == 1:
            raise RuntimeError("fails on its first delivery")
        threading.Event().wait(seconds)  # the task's work
        ledger.record("finish", task_id, count)

    queue.add_task_handler("work", work)
    consumer = Consumer(queue, max_messages=10, max_threads=threads)
    try:
        assert wait_until(
            lambda: (
                len(ledger.tasks("finish")) == tasks and queue_counts(sqs_client, url) == (0, 0, 0)
            ),
            timeout=60,
            interval=0.2,
        )
    finally:
        consumer.stop(timeout=30)
    return ledger, refuser, handles


def test_a_delete_refused_again_and_again_delays_no_other_delete(
    endpoint_url: str, sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given 20 tasks of 0.5 s on a queue with a 3 s visibility timeout, run one at a time
    # (so fewer than ten deletes wait at once), and SQS refusing the delete of the first
    # task that finishes, every time, while its retries back off to 5 s
    url = make_queue("refused-delete", VisibilityTimeout=3)
    tasks = work_tasks(20, seconds=0.5)
    send_tasks(sqs_client, url, tasks)

    # When a worker runs them all, and the refused one comes back and runs again
    ledger, refuser, handles = _run(
        endpoint_url, sqs_client, url, "DeleteMessageBatch", len(tasks), threads=1
    )

    # Then the refused entry was tried again several times, on its own schedule
    assert refuser.handle is not None
    assert refuser.refusals >= 3, refuser.refusals
    refused_task = handles[refuser.handle]

    # And no other task ran twice: their deletes went out before their visibility timeout
    starts = Counter(c.task_id for c in ledger.calls if c.event == "start")
    others_twice = sorted(t for t, n in starts.items() if n > 1 and t != refused_task)
    assert others_twice == []
    assert starts[refused_task] == 2  # its message came back after 3 s, and was deleted then
    print(
        f"\nFAULT-FIGURES refused_delete tasks=20 lost={20 - len(ledger.tasks('finish'))} "
        f"other_duplicates={len(others_twice)} refused_task_runs={starts[refused_task]} "
        f"refusals={refuser.refusals} delete_calls={refuser.calls}"
    )


def test_a_refused_visibility_change_delays_no_heartbeat(
    endpoint_url: str, sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given 4 tasks of 6 s on a queue with a 2 s visibility timeout (the heartbeat extends
    # each every second) and a task that fails at once, and SQS refusing every change of
    # that task's visibility (its backoff), while the retries back off to 5 s
    url = make_queue("refused-beat", VisibilityTimeout=2)
    tasks = [{"task_id": "fails", "fail_first": True}, *work_tasks(4, seconds=6.0)]
    send_tasks(sqs_client, url, tasks)

    # When a worker runs them side by side
    ledger, refuser, handles = _run(
        endpoint_url, sqs_client, url, "ChangeMessageVisibilityBatch", len(tasks), threads=8
    )

    # Then the refused change was retried, and its message came back after the visibility
    # timeout instead of its backoff, and ran again
    assert refuser.handle is not None and refuser.refusals >= 4
    refused_task = handles[refuser.handle]
    assert refused_task == "fails"
    starts = Counter(c.task_id for c in ledger.calls if c.event == "start")
    others_twice = sorted(t for t, n in starts.items() if n > 1 and t != refused_task)
    assert others_twice == []
    assert starts[refused_task] == 2
    # And every other task ran once, on its first delivery: its heartbeats kept it hidden
    first_deliveries = {
        c.task_id for c in ledger.calls if c.event == "start" and c.receive_count == 1
    }
    assert first_deliveries == {t["task_id"] for t in tasks}
    print(
        f"\nFAULT-FIGURES refused_visibility_change tasks=5 lost={5 - len(ledger.tasks('finish'))} "
        f"other_duplicates={len(others_twice)} refused_task_runs={starts[refused_task]} "
        f"refusals={refuser.refusals} visibility_calls={refuser.calls}"
    )
