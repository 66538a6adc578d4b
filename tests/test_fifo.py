"""FIFO queues in the polling worker: one message at a time per group, in order."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from conftest import Consumer, queue_counts, wait_until

from sqsx import Queue
from sqsx.sending import TaskMessage


class Recorder:
    """Records handler runs: (group, seq, start, end, succeeded)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: list[tuple[str, int, float, float, bool]] = []
        self.running = 0
        self.max_running = 0

    def handler(self, fail_once: set[tuple[str, int]]) -> Any:
        def run(context: dict[str, Any], group: str, seq: int) -> None:
            with self.lock:
                self.running += 1
                self.max_running = max(self.max_running, self.running)
            start = time.monotonic()
            failed = False
            try:
                time.sleep(0.02)
                receive_count = int(context["sqs_message"]["Attributes"]["ApproximateReceiveCount"])
                if (group, seq) in fail_once and receive_count == 1:
                    failed = True
                    raise RuntimeError("fails on its first delivery")
            finally:
                with self.lock:
                    self.running -= 1
                    self.runs.append((group, seq, start, time.monotonic(), not failed))

        return run

    def succeeded(self, group: str) -> list[int]:
        with self.lock:
            ordered = sorted((r for r in self.runs if r[0] == group and r[4]), key=lambda r: r[3])
        return [r[1] for r in ordered]

    def overlapping_in_group(self) -> bool:
        with self.lock:
            runs = list(self.runs)
        for a in runs:
            for b in runs:
                if a is not b and a[0] == b[0] and a[2] < b[3] and b[2] < a[3]:
                    return True
        return False


def _send_groups(queue: Queue, groups: list[str], per_group: int) -> None:
    tasks = [
        TaskMessage("step", {"group": g, "seq": n}, group_id=g)
        for n in range(per_group)
        for g in groups
    ]
    assert all(result.ok for result in queue.send_tasks(tasks))


@pytest.fixture
def fifo_url(make_queue: Any) -> str:
    return str(
        make_queue("fifo", fifo=True, ContentBasedDeduplication="true", VisibilityTimeout=30)
    )


def test_groups_run_in_order_one_at_a_time_and_in_parallel(sqs_client: Any, fifo_url: str) -> None:
    # Given three groups of eight ordered tasks
    queue = Queue(url=fifo_url, sqs_client=sqs_client)
    recorder = Recorder()
    queue.add_task_handler("step", recorder.handler(set()))
    _send_groups(queue, ["a", "b", "c"], 8)

    # When four threads consume them
    consumer = Consumer(queue, max_messages=10, max_threads=4)
    assert wait_until(lambda: queue.stats().succeeded == 24, timeout=30)
    consumer.stop()

    # Then each group ran in order, never two of a group at once, and groups overlapped
    for group in "abc":
        assert recorder.succeeded(group) == list(range(8))
    assert not recorder.overlapping_in_group()
    assert recorder.max_running > 1
    assert queue_counts(sqs_client, fifo_url) == (0, 0, 0)


def test_a_failure_holds_back_the_rest_of_its_group_only(sqs_client: Any, fifo_url: str) -> None:
    # Given group "a" whose third task fails once and an unaffected group "b"
    # (a 3 s backoff: group "b" must visibly finish inside it, even on a loaded machine)
    queue = Queue(url=fifo_url, sqs_client=sqs_client, min_backoff_seconds=3, max_backoff_seconds=3)
    recorder = Recorder()
    queue.add_task_handler("step", recorder.handler({("a", 2)}))
    _send_groups(queue, ["a", "b"], 6)

    # When the worker consumes with several threads
    consumer = Consumer(queue, max_messages=10, max_threads=4)
    assert wait_until(lambda: len(recorder.succeeded("a")) == 6, timeout=30)
    consumer.stop()

    # Then "a" still completed in order: nothing after seq 2 ran before seq 2 succeeded
    assert recorder.succeeded("a") == list(range(6))
    first_success_of_2 = min(r[3] for r in recorder.runs if r[:2] == ("a", 2) and r[4])
    assert all(r[2] >= first_success_of_2 for r in recorder.runs if r[0] == "a" and r[1] > 2)
    # and "b" was not held up by it
    assert recorder.succeeded("b") == list(range(6))
    last_b = max(r[3] for r in recorder.runs if r[0] == "b")
    assert last_b < first_success_of_2
    assert queue.stats().released >= 1
