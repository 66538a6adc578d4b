"""Long tasks: tasks three times longer than the visibility timeout each run exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Consumer, queue_counts, wait_until
from faultkit import Ledger, send_tasks, work_tasks

from sqsx import Queue

pytestmark = pytest.mark.fault

TASKS = 12
THREADS = 4
VISIBILITY_TIMEOUT = 2
TASK_SECONDS = 3 * VISIBILITY_TIMEOUT


def test_tasks_three_times_the_visibility_timeout_run_once(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given 12 tasks of 6 s on a queue whose visibility timeout is 2 s, received ten at a
    # time by 4 threads: most messages wait in the worker (up to 12 s) before they start
    url = make_queue("long", VisibilityTimeout=VISIBILITY_TIMEOUT)
    tasks = work_tasks(TASKS, seconds=TASK_SECONDS)
    send_tasks(sqs_client, url, tasks)
    queue = Queue(url=url, sqs_client=sqs_client)
    ledger = Ledger()

    def work(context: dict[str, Any], task_id: str, seconds: float = 0.0) -> None:
        count = int(context["sqs_message"]["Attributes"]["ApproximateReceiveCount"])
        ledger.record("start", task_id, count)
        time.sleep(seconds)  # the task's work
        ledger.record("finish", task_id, count)

    queue.add_task_handler("work", work)

    # When a worker runs them all
    consumer = Consumer(queue, max_messages=10, max_threads=THREADS)
    try:
        assert wait_until(
            lambda: (
                len(ledger.tasks("finish")) == TASKS and queue_counts(sqs_client, url) == (0, 0, 0)
            ),
            timeout=TASKS * TASK_SECONDS / THREADS + 30,
            interval=0.2,
        )
    finally:
        consumer.stop(timeout=30)

    # Then each ran exactly once, on its first delivery: the heartbeat kept every held
    # message, running or waiting, from coming back
    audit = ledger.audit(t["task_id"] for t in tasks)
    assert audit.unfinished == frozenset()
    assert audit.duplicates == 0, sorted(audit.duplicated)
    assert {c.receive_count for c in ledger.calls} == {1}
    assert queue.stats().succeeded == TASKS
    print(
        f"\nFAULT-FIGURES long_tasks tasks={TASKS} lost={len(audit.unfinished)} "
        f"duplicates={audit.duplicates} task_seconds={TASK_SECONDS} "
        f"visibility_timeout={VISIBILITY_TIMEOUT} received={queue.stats().received}"
    )
