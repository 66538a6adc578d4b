"""max_concurrency: at most N messages of a task at once, in both runtimes (moto), without
starving the other tasks of the worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Consumer, lambda_event, queue_counts, wait_until

from sqsx import ConfigurationError, Queue
from sqsx.caps import ConcurrencyCaps
from sqsx.message import Message
from sqsx_lambda import LambdaHandler
from sqsx_lambda.invoke import LocalContext


class Gauge:
    """Counts handlers running at once, from inside them."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.lock = threading.Lock()

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *_: object) -> None:
        with self.lock:
            self.now -= 1


def test_a_capped_task_never_runs_more_than_its_cap_and_others_keep_flowing(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given a backlog of a task capped at 2, sent before a batch of uncapped tasks
    url = make_queue(VisibilityTimeout=30)
    queue = Queue(url, sqs_client)
    limited, free = Gauge(), Gauge()
    finished: list[str] = []

    def slow(context: dict[str, Any]) -> None:
        with limited:
            time.sleep(0.5)
        finished.append("slow")

    def quick(context: dict[str, Any]) -> None:
        with free:
            time.sleep(0.02)
        finished.append("quick")

    queue.add_task_handler("slow", slow, max_concurrency=2)
    queue.add_task_handler("quick", quick)
    from sqsx import TaskMessage

    queue.send_tasks([TaskMessage("slow") for _ in range(20)])
    queue.send_tasks([TaskMessage("quick") for _ in range(40)])

    # When a worker with 6 threads drains the queue
    consumer = Consumer(queue, max_threads=6, max_messages=10)
    try:
        assert wait_until(lambda: queue_counts(sqs_client, url) == (0, 0, 0), timeout=60)
    finally:
        consumer.stop()

    # Then the capped task ran two at a time, never more, and the quick tasks used the
    # other threads meanwhile instead of queueing behind the capped backlog
    assert limited.most == 2
    assert free.most >= 3
    assert finished.count("slow") == 20 and finished.count("quick") == 40
    last_quick = max(i for i, name in enumerate(finished) if name == "quick")
    # (moto hands out the slow backlog first, ten per receive; the quick ones then overtake)
    assert finished[last_quick + 1 :].count("slow") >= 4


def test_lambda_caps_a_task_within_one_invocation(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    url = make_queue(VisibilityTimeout=30)
    queue = Queue(url, sqs_client)
    gauge = Gauge()
    ran: list[int] = []

    def capped(context: dict[str, Any], n: int) -> None:
        with gauge:
            time.sleep(0.05)
        ran.append(n)

    queue.add_task_handler("capped", capped, max_concurrency=3)
    for n in range(10):
        queue.add_task("capped", n=n)
    handler = LambdaHandler(queue, max_threads=8)
    try:
        response = handler(lambda_event(sqs_client, url, 10), LocalContext())
    finally:
        handler.close()
    assert response["batchItemFailures"] == []
    assert sorted(ran) == list(range(10))
    assert gauge.most == 3


@pytest.mark.parametrize("bad", [0, -2, 1025, 1.5, True, "3"])
def test_bad_caps_are_refused_at_registration(sqs_client: Any, bad: Any) -> None:
    queue = Queue("http://127.0.0.1:1/0/q", sqs_client)
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        queue.add_task_handler("t", lambda context: None, max_concurrency=bad)
    assert queue.task_names == []


def _message(task: str, n: int) -> Message:
    attributes = {"TaskName": {"DataType": "String", "StringValue": task}}
    return Message.from_boto3(
        {"MessageId": f"{task}{n}", "ReceiptHandle": "r", "MessageAttributes": attributes}
    )


def test_caps_count_what_they_block_and_release_what_waits_too_long() -> None:
    from collections import deque

    from sqsx.caps import CAP_WAIT_LIMIT_SECONDS

    caps = ConcurrencyCaps(lambda: {"a": 1})
    waiting = deque([_message("a", 0), _message("a", 1), _message("b", 0)])
    caps.waiting(waiting, now=0)
    assert caps.allowed(waiting[0])
    caps.started(waiting.popleft())
    assert not caps.allowed(waiting[0]) and caps.allowed(waiting[1])
    assert caps.blocked(waiting) == 1  # ("a", 1) waits for its cap; ("b", 0) may run
    assert caps.overdue(waiting, now=CAP_WAIT_LIMIT_SECONDS - 1) == []
    [late] = caps.overdue(waiting, now=CAP_WAIT_LIMIT_SECONDS)
    assert late.message_id == "a1" and [m.message_id for m in waiting] == ["b0"]
