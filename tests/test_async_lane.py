"""The async lane in the polling worker: ``async def`` handlers' coroutines hold no thread
each, with the fates of sync handlers (Lambda: ``test_async_lane_lambda.py``).

Against moto over HTTP (the ``sqs_client`` fixture). Concurrency is measured inside the
handlers (``conftest.Overlap``): how many coroutines were between their start and their end
at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Consumer, FifoGroups, Overlap, queue_counts, wait_until

from sqsx import Hook, NoRetry, Outcome, Processing, Queue, Retry

pytestmark = pytest.mark.timeout(120)


def _send(queue: Queue, task: str, count: int, **kwargs: Any) -> None:
    from sqsx import TaskMessage

    for start in range(0, count, 10):
        sent = queue.send_tasks(TaskMessage(task, kwargs) for _ in range(min(10, count - start)))
        assert all(result.ok for result in sent)


def _drain_naps(
    sqs_client: Any, url: str, count: int, seconds: float, **options: Any
) -> tuple[Queue, Overlap, float]:
    """A worker drains ``count`` tasks whose async handler sleeps ``seconds``; the queue,
    what the handlers measured, and how long it took."""
    queue = Queue(url, sqs_client)
    overlap = Overlap()

    async def nap(context: dict[str, Any]) -> None:
        await overlap.run(seconds)

    queue.add_task_handler("nap", nap)
    _send(queue, "nap", count)
    started = time.monotonic()
    consumer = Consumer(queue, max_messages=10, **options)
    try:
        # at least: moto may deliver a message twice under concurrent receives
        assert wait_until(lambda: overlap.finished >= count, timeout=60)
        elapsed = time.monotonic() - started
        assert wait_until(lambda: queue_counts(sqs_client, url) == (0, 0, 0), timeout=20)
    finally:
        consumer.stop()
    return queue, overlap, elapsed


def test_many_coroutines_run_at_once_on_two_worker_threads(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given 150 tasks whose async handler sleeps 1 s
    # When a worker with 2 threads drains the queue with up to 100 coroutines at once
    url = make_queue(VisibilityTimeout=60)
    queue, overlap, elapsed = _drain_naps(sqs_client, url, 150, 1.0, max_threads=2, max_async=100)

    # Then far more coroutines ran at once than there are threads, never over the bound,
    # all on one event loop thread; and 150 one-second naps took far less than 75 s
    assert 20 <= overlap.peak <= 100
    assert len(overlap.threads) == 1
    assert elapsed < 40
    assert queue.stats().succeeded >= 150


def test_max_async_bounds_the_coroutines_running_at_once(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    url = make_queue(VisibilityTimeout=60)
    _, overlap, _ = _drain_naps(sqs_client, url, 40, 0.2, max_threads=4, max_async=3)
    assert overlap.peak == 3


def test_async_fates_backoff_and_time_limit_in_the_worker(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given async handlers that succeed, raise NoRetry, Retry, an error, or overrun a limit
    url = make_queue(VisibilityTimeout=60)
    queue = Queue(url, sqs_client, min_backoff_seconds=30, max_backoff_seconds=30)
    ran: list[str] = []

    async def ok(context: dict[str, Any]) -> None:
        await asyncio.sleep(0.05)
        ran.append("ok")

    async def no_retry(context: dict[str, Any]) -> None:
        ran.append("no_retry")
        raise NoRetry()

    async def retry(context: dict[str, Any]) -> None:
        ran.append("retry")
        raise Retry(min_backoff_seconds=40, max_backoff_seconds=40)

    async def broken(context: dict[str, Any]) -> None:
        ran.append("broken")
        raise KeyError("x")

    async def slow(context: dict[str, Any]) -> None:
        ran.append("slow")
        await asyncio.sleep(30)
        ran.append("slow finished")  # never: cancelled at its limit

    for fn in (ok, no_retry, retry, broken):
        queue.add_task_handler(fn.__name__, fn)
    queue.add_task_handler("slow", slow, time_limit=0.5)
    for name in ("ok", "no_retry", "retry", "broken", "slow"):
        queue.add_task(name)

    # When a one-thread worker takes them all
    started = time.monotonic()
    consumer = Consumer(queue, max_threads=1, max_messages=10)
    try:
        assert wait_until(lambda: queue.stats().processed >= 5, timeout=20)
        elapsed = time.monotonic() - started
    finally:
        consumer.stop()

    # Then each got a sync handler's fate: two deleted, three hidden for their backoff
    stats = queue.stats()
    assert (stats.succeeded, stats.no_retry, stats.retried, stats.timed_out) == (1, 1, 2, 1)
    assert sorted(ran) == ["broken", "no_retry", "ok", "retry", "slow"]
    assert elapsed < 15  # the slow one was let go at its 0.5 s limit, not after 30 s
    assert wait_until(lambda: queue_counts(sqs_client, url) == (0, 3, 0), timeout=10)


def test_fifo_groups_stay_in_order_in_the_worker_with_coroutines(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given two FIFO groups of six messages each
    url = make_queue(fifo=True, VisibilityTimeout=60, ContentBasedDeduplication="true")
    groups = FifoGroups(sqs_client, url, 6)

    # When a one-thread worker runs them as coroutines
    consumer = Consumer(groups.queue, max_threads=1, max_messages=10)
    try:
        assert wait_until(lambda: groups.ran() == 12, timeout=30)
    finally:
        consumer.stop()

    # Then each group ran in order, one message at a time, the two groups side by side
    assert groups.order == {"a": list(range(6)), "b": list(range(6))}
    assert groups.overlap.peak == 2


def test_graceful_stop_waits_for_running_coroutines(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    url = make_queue(VisibilityTimeout=60)
    queue = Queue(url, sqs_client)
    overlap = Overlap()

    async def nap(context: dict[str, Any]) -> None:
        await overlap.run(1.5)

    queue.add_task_handler("nap", nap)
    _send(queue, "nap", 10)
    consumer = Consumer(queue, max_threads=1, max_messages=10)
    try:
        assert wait_until(lambda: overlap.now >= 10, timeout=20)
    finally:
        consumer.stop()  # a graceful stop: the running coroutines finish first
    assert overlap.now == 0 and overlap.finished >= 10  # (moto may deliver one twice)
    assert queue.stats().succeeded == overlap.finished
    assert wait_until(lambda: queue_counts(sqs_client, url) == (0, 0, 0), timeout=10)


def test_stop_timeout_cancels_coroutines_and_releases_their_messages(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given coroutines that would sleep a minute, on a queue with a 60 s visibility timeout
    url = make_queue(VisibilityTimeout=60)
    queue = Queue(url, sqs_client)
    overlap = Overlap()
    cancelled: list[int] = []

    async def long(context: dict[str, Any]) -> None:
        try:
            await overlap.run(60)
        except asyncio.CancelledError:
            cancelled.append(1)
            raise

    queue.add_task_handler("long", long)
    _send(queue, "long", 5)
    consumer = Consumer(queue, max_threads=1, max_messages=10, stop_timeout=0.5)
    assert wait_until(lambda: overlap.now >= 5, timeout=20)

    # When the worker is stopped with a 0.5 s stop timeout
    started = time.monotonic()
    consumer.stop()

    # Then it stops within seconds, each coroutine was cancelled, and every message is
    # visible again at once rather than after its 60 s visibility timeout
    assert time.monotonic() - started < 8
    assert len(cancelled) == overlap.finished >= 5  # (moto may deliver one twice)
    assert queue_counts(sqs_client, url) == (5, 0, 0)
    assert queue.stats().retried == len(cancelled)


def test_exit_gracefully_from_a_coroutine_and_hooks_see_one_processing(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given a hook that sets a context variable in before_process, and a handler that reads
    # it and asks the worker to stop
    url = make_queue(VisibilityTimeout=60)
    scope: contextvars.ContextVar[str] = contextvars.ContextVar("scope", default="-")
    seen: list[tuple[str, Any]] = []

    class Scope(Hook):
        def before_process(self, processing: Processing) -> None:
            processing.state[self] = scope.set(processing.message.message_id)
            seen.append(("before", processing))

        def after_process(self, processing: Processing, outcome: Outcome) -> None:
            scope.reset(processing.state.pop(self))  # raises if in another context
            seen.append(("after", processing))

    queue = Queue(url, sqs_client, hooks=[Scope()])
    in_handler: list[str] = []

    async def last(context: dict[str, Any]) -> None:
        await asyncio.sleep(0.01)
        in_handler.append(scope.get())
        queue.exit_gracefully()

    queue.add_task_handler("last", last)
    queue.add_task("last")
    consumer = Consumer(queue, max_threads=1)
    consumer.thread.join(20)
    assert not consumer.thread.is_alive(), "exit_gracefully from a coroutine did not stop it"
    consumer.stop()

    [before, after] = seen
    assert before[0] == "before" and after[0] == "after"
    assert before[1] is after[1]
    assert in_handler == [before[1].message.message_id]
    assert queue.stats().succeeded == 1
