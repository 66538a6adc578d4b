"""Handlers that hang: with a time limit, a hung handler's message comes back after its
backoff and the worker keeps every thread working; nothing is lost."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Consumer, queue_counts, wait_until
from faultkit import Ledger, send_tasks, work_tasks

from sqsx import Queue

pytestmark = pytest.mark.fault

THREADS = 4
LIMIT = 1.0


def _receive_count(context: dict[str, Any]) -> int:
    return int(context["sqs_message"]["Attributes"]["ApproximateReceiveCount"])


@pytest.mark.parametrize(
    "hanging",
    [
        pytest.param(lambda n: n == 0, id="one-hangs-forever"),
        pytest.param(lambda n: True, id="all"),
    ],
)
def test_hung_handlers_are_let_go_and_nothing_is_lost(
    sqs_client: Any, make_queue: Callable[..., str], hanging: Callable[[int], bool]
) -> None:
    # Given 12 tasks whose first delivery blocks in a C call (forever, for the worker: 60 s
    # here) when ``hanging`` picks them, under a 1 s time limit, and 4 threads
    url = make_queue("hangs", VisibilityTimeout=30)
    tasks = work_tasks(12)
    send_tasks(sqs_client, url, tasks)
    queue = Queue(url=url, sqs_client=sqs_client, min_backoff_seconds=1, max_backoff_seconds=1)
    ledger = Ledger()
    release = threading.Event()
    order = {t["task_id"]: n for n, t in enumerate(tasks)}

    def work(context: dict[str, Any], task_id: str, seconds: float = 0.0) -> None:
        count = _receive_count(context)
        ledger.record("start", task_id, count)
        if count == 1 and hanging(order[task_id]):
            release.wait(60)  # a lock wait: the time limit cannot interrupt it
        ledger.record("finish", task_id, count)

    queue.add_task_handler("work", work, time_limit=LIMIT)

    # When a worker runs them
    consumer = Consumer(queue, max_messages=10, max_threads=THREADS)
    try:
        assert wait_until(
            lambda: (
                queue_counts(sqs_client, url) == (0, 0, 0)
                and len({c.task_id for c in ledger.calls if c.event == "finish"}) == len(tasks)
            ),
            timeout=90,
            interval=0.2,
        )
    finally:
        release.set()
        consumer.stop(timeout=30)

    # Then every task finished (the hung ones on a later delivery, after their backoff),
    # each hung one was counted as timed out, and none was lost
    audit = ledger.audit(t["task_id"] for t in tasks)
    hung = [t for t in tasks if hanging(order[t["task_id"]])]
    assert audit.unfinished == frozenset()
    assert queue.stats().timed_out == len(hung)
    for task in hung:
        finishes = [c for c in ledger.calls if c.task_id == task["task_id"] and c.event == "finish"]
        assert min(c.receive_count for c in finishes if c.receive_count > 1) == 2
    print(
        f"\nFAULT-FIGURES hangs tasks={len(tasks)} hung={len(hung)} "
        f"lost={len(audit.unfinished)} timed_out={queue.stats().timed_out}"
    )
