"""The polling engine against moto over HTTP: pipelining, batched acks, heartbeat, stop."""

from __future__ import annotations

import threading
import time
from typing import Any

from conftest import CallCounter, Consumer, fail_first_call, queue_counts, wait_until

from sqsx import Queue, RawQueue


def test_all_tasks_run_and_are_deleted_in_batches(
    sqs_client: Any, queue_url: str, call_counter: CallCounter
) -> None:
    # Given 50 tasks
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    seen: list[int] = []
    lock = threading.Lock()

    def handler(context: dict[str, Any], n: int) -> None:
        with lock:
            seen.append(n)

    queue.add_task_handler("t", handler)
    for n in range(50):
        queue.add_task("t", n=n)

    # When a 5-thread worker drains them
    consumer = Consumer(queue, max_messages=10, max_threads=5)
    assert wait_until(lambda: len(seen) >= 50 and queue_counts(sqs_client, queue_url) == (0, 0, 0))
    consumer.stop()

    # Then each ran, all are gone, and deletes went out ten to a call, never one by one
    assert sorted(set(seen)) == list(range(50))
    assert call_counter.counts["DeleteMessage"] == 0
    assert 5 <= call_counter.counts["DeleteMessageBatch"] <= 25
    assert queue.stats().succeeded >= 50


def test_receives_again_before_the_slow_task_of_a_batch_ends(
    sqs_client: Any, queue_url: str
) -> None:
    # Given one slow task and nine fast ones, then ten more sent later
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    slow_done = threading.Event()
    second_wave_started = threading.Event()
    release = threading.Event()

    def slow(context: dict[str, Any]) -> None:
        release.wait(10)
        slow_done.set()

    def fast(context: dict[str, Any], wave: int) -> None:
        if wave == 2:
            second_wave_started.set()

    queue.add_task_handler("slow", slow)
    queue.add_task_handler("fast", fast)
    queue.add_task("slow")
    for _ in range(9):
        queue.add_task("fast", wave=1)

    consumer = Consumer(queue, max_messages=10, max_threads=10)
    try:
        assert wait_until(lambda: queue.stats().succeeded >= 9)
        for _ in range(5):
            queue.add_task("fast", wave=2)
        # Then a task of the second wave runs while the slow one is still running
        assert second_wave_started.wait(10)
        assert not slow_done.is_set()
    finally:
        release.set()
        consumer.stop()
    assert slow_done.is_set()


def test_heartbeat_keeps_a_long_task_from_redelivery(sqs_client: Any, make_queue: Any) -> None:
    # Given a queue whose visibility timeout is 2 s and a task running 6 s
    url = make_queue(VisibilityTimeout=2)
    queue = Queue(url=url, sqs_client=sqs_client)
    runs: list[float] = []

    def long_task(context: dict[str, Any]) -> None:
        runs.append(time.monotonic())
        time.sleep(6)

    queue.add_task_handler("long", long_task)
    queue.add_task("long")

    # When two threads consume (a second would pick up a redelivered copy)
    consumer = Consumer(queue, max_threads=2)
    assert wait_until(lambda: queue.stats().succeeded == 1, timeout=15)
    consumer.stop()

    # Then it ran exactly once and is gone
    assert len(runs) == 1
    assert queue_counts(sqs_client, url) == (0, 0, 0)


def test_stop_releases_unstarted_messages_at_once(sqs_client: Any, make_queue: Any) -> None:
    # Given ten messages, a visibility timeout of 60 s and one thread blocked on the first
    url = make_queue(VisibilityTimeout=60)
    started = threading.Event()
    proceed = threading.Event()

    def handler(queue_url: str, message: dict[str, Any]) -> None:
        started.set()
        proceed.wait(10)

    queue = RawQueue(url=url, message_handler_function=handler, sqs_client=sqs_client)
    for i in range(10):
        queue.add_message(message_body=f"m{i}")
    consumer = Consumer(queue, max_messages=10, max_threads=1)
    assert started.wait(10)
    assert wait_until(lambda: queue.stats().received == 10)

    # When the worker is stopped while the first handler runs
    queue.exit_gracefully()
    assert wait_until(lambda: queue.stats().released >= 9, timeout=5)
    proceed.set()
    consumer.stop()

    # Then the nine unstarted messages are visible again at once, the finished one is gone
    assert wait_until(lambda: queue_counts(sqs_client, url) == (9, 0, 0), timeout=3)
    assert queue.stats().succeeded == 1
    # (and every other message received was released: the receive in flight at the stop may
    # bring one of the nine back, once visible, and it is released again)
    stats = queue.stats()
    assert stats.released == stats.received - 1 >= 9


def test_a_failed_task_is_backed_off_then_redelivered(sqs_client: Any, queue_url: str) -> None:
    # Given a task that fails once, with a 1 s minimum backoff
    queue = Queue(
        url=queue_url, sqs_client=sqs_client, min_backoff_seconds=1, max_backoff_seconds=5
    )
    receive_counts: list[int] = []

    def flaky(context: dict[str, Any]) -> None:
        count = int(context["sqs_message"]["Attributes"]["ApproximateReceiveCount"])
        receive_counts.append(count)
        if count == 1:
            raise RuntimeError("first try fails")

    queue.add_task_handler("flaky", flaky)
    queue.add_task("flaky")
    consumer = Consumer(queue)
    # When it fails, it is invisible for its backoff, then comes back and succeeds
    assert wait_until(lambda: len(receive_counts) == 1)
    assert queue_counts(sqs_client, queue_url)[1] == 1
    assert wait_until(lambda: queue.stats().succeeded == 1, timeout=10)
    consumer.stop()
    assert receive_counts == [1, 2]
    assert queue.stats().retried == 1
    assert queue_counts(sqs_client, queue_url) == (0, 0, 0)


def test_drain_stops_once_the_queue_is_empty(sqs_client: Any, queue_url: str) -> None:
    # Given 20 tasks and a draining run
    from sqsx import ConsumeOptions

    queue = Queue(url=queue_url, sqs_client=sqs_client)
    done: list[int] = []
    queue.add_task_handler("t", lambda context, n: done.append(n))
    for n in range(20):
        queue.add_task("t", n=n)

    # When it runs in this thread
    queue.run(
        ConsumeOptions(
            max_messages=10, max_threads=4, polling_wait_seconds=1, wait_seconds=0, drain=True
        )
    )

    # Then it returned by itself with every task done and the queue empty
    assert sorted(done) == list(range(20))
    assert queue_counts(sqs_client, queue_url) == (0, 0, 0)


def test_lease_matches_heartbeat_when_the_queue_timeout_cannot_be_read(
    sqs_client: Any, make_queue: Any
) -> None:
    # Given a 2 s visibility timeout that the worker fails to read (a 500 on its first
    # GetQueueAttributes), and two tasks running 5 s each
    url = make_queue(VisibilityTimeout=2)
    calls = fail_first_call(sqs_client, "GetQueueAttributes", "InternalError", 500)
    queue = Queue(url=url, sqs_client=sqs_client)
    runs: list[int] = []
    lock = threading.Lock()

    def long_task(context: dict[str, Any], n: int) -> None:
        with lock:
            runs.append(n)
        time.sleep(5)

    queue.add_task_handler("long", long_task)
    queue.add_task("long", n=1)
    queue.add_task("long", n=2)

    # When four threads consume (spare threads would take a redelivered copy)
    consumer = Consumer(queue, max_messages=2, max_threads=4)
    assert wait_until(lambda: queue.stats().succeeded == 2, timeout=20)
    consumer.stop()

    # Then the injected failure happened, and each task still ran exactly once
    assert calls[0] == "GetQueueAttributes"
    assert sorted(runs) == [1, 2]


def test_fractional_backoffs_are_whole_seconds_and_keep_the_heartbeat_going(
    sqs_client: Any, make_queue: Any
) -> None:
    # Given a 2 s visibility timeout, a float backoff setting, a task that retries with
    # Retry(min_backoff_seconds=0.5) and a long task whose heartbeat shares the batches
    from sqsx.exceptions import Retry

    url = make_queue(VisibilityTimeout=2)
    queue = Queue(url=url, sqs_client=sqs_client, min_backoff_seconds=1.0)  # type: ignore[arg-type]
    runs: list[str] = []
    lock = threading.Lock()

    def retry_once(context: dict[str, Any]) -> None:
        with lock:
            runs.append("retry")
        if context["sqs_message"]["Attributes"]["ApproximateReceiveCount"] == "1":
            raise Retry(min_backoff_seconds=0.5, max_backoff_seconds=1.5)  # type: ignore[arg-type]

    def long_task(context: dict[str, Any]) -> None:
        with lock:
            runs.append("long")
        time.sleep(5)

    queue.add_task_handler("retry", retry_once)
    queue.add_task_handler("long", long_task)
    queue.add_task("long")
    queue.add_task("retry")

    # When they run on a worker with threads to spare
    consumer = Consumer(queue, max_messages=2, max_threads=4)
    assert wait_until(lambda: queue.stats().succeeded == 2, timeout=20)
    consumer.stop()

    # Then the retry came back (its backoff, 1 s, was accepted) and the long task ran once
    assert runs.count("retry") == 2
    assert runs.count("long") == 1


def test_a_queue_with_a_zero_visibility_timeout_does_not_hand_out_running_messages(
    sqs_client: Any, make_queue: Any
) -> None:
    # Given a queue whose VisibilityTimeout is 0 and a 2 s task, with threads to spare
    url = make_queue(VisibilityTimeout=0)
    queue = Queue(url=url, sqs_client=sqs_client)
    runs: list[int] = []
    queue.add_task_handler("slow", lambda context: (runs.append(1), time.sleep(2)))
    queue.add_task("slow")

    consumer = Consumer(queue, max_threads=4)
    assert wait_until(lambda: queue.stats().succeeded == 1, timeout=15)
    consumer.stop()

    # Then it ran once: the worker received it with a real visibility timeout
    assert runs == [1]


def test_close_from_inside_a_handler_stops_the_run_without_deadlock(
    sqs_client: Any, queue_url: str
) -> None:
    # Given a handler that closes its own queue
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    queue.add_task_handler("quit", lambda context: queue.close())
    queue.add_task("quit")

    # When it runs, the run ends by itself (Consumer.stop would also ask: give it time first)
    consumer = Consumer(queue)
    consumer.thread.join(15)
    assert not consumer.thread.is_alive()
    assert queue.stats().succeeded == 1
