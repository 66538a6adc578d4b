"""One worker, several queues (``QueueGroup``), on the local SQS server."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from conftest import make_client, queue_counts, wait_until

from sqsx import ConsumeOptions, Queue, QueueGroup
from sqsx.exceptions import ConfigurationError, QueueUnavailableError, WrongTypeError

pytestmark = pytest.mark.timeout(90)


class _GroupRun:
    """Runs ``group.run(options)`` in a thread; ``stop()`` asks it to exit and joins."""

    def __init__(self, group: QueueGroup, **options: Any) -> None:
        options.setdefault("wait_seconds", 0)
        options.setdefault("polling_wait_seconds", 1)
        self.group = group
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, args=(ConsumeOptions(**options),), daemon=True
        )
        self.thread.start()

    def _run(self, options: ConsumeOptions) -> None:
        try:
            self.group.run(options)
        except BaseException as err:
            self.error = err

    def join(self, timeout: float = 30.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the group did not stop in time"

    def stop(self, timeout: float = 30.0) -> None:
        self.group.exit_gracefully()
        self.join(timeout)
        if self.error is not None:
            raise self.error


def _queue(sqs_client: Any, url: str, **settings: Any) -> Queue:
    return Queue(url=url, sqs_client=sqs_client, min_backoff_seconds=0, **settings)


def test_each_queue_runs_its_own_handlers_and_counts_its_own_messages(
    sqs_client: Any, make_queue: Any
) -> None:
    # Given two queues, each with its own handler for the same task name
    orders, emails = _queue(sqs_client, make_queue("orders")), _queue(sqs_client, make_queue("e"))
    ran: list[tuple[str, int]] = []
    orders.add_task_handler("work", lambda context, n: ran.append(("orders", n)))
    emails.add_task_handler("work", lambda context, n: ran.append(("emails", n)))
    for n in range(12):
        orders.add_task("work", n=n)
    for n in range(7):
        emails.add_task("work", n=n)

    # When one group drains both on shared threads
    group = QueueGroup([orders, emails])
    _GroupRun(group, max_threads=4, max_messages=10, drain=True).join(60)

    # Then each message ran through its own queue's handler, and both queues are empty
    assert sorted(ran) == sorted(
        [("orders", n) for n in range(12)] + [("emails", n) for n in range(7)]
    )
    assert queue_counts(sqs_client, orders.url) == (0, 0, 0)
    assert queue_counts(sqs_client, emails.url) == (0, 0, 0)
    # And the counters are per queue and in total
    by_queue = group.stats_by_queue()
    assert by_queue[orders.url].succeeded == 12
    assert by_queue[emails.url].succeeded == 7
    assert group.stats().succeeded == 19
    assert group.stats().received == by_queue[orders.url].received + by_queue[emails.url].received


def test_each_queue_keeps_its_own_poison_policy(sqs_client: Any, make_queue: Any) -> None:
    # Given a queue that deletes poison messages and one that retries them
    deleting = _queue(sqs_client, make_queue("del"), poison_policy="delete")
    retrying = Queue(url=make_queue("ret"), sqs_client=sqs_client, min_backoff_seconds=60)
    for queue in (deleting, retrying):
        queue.add_task("no-such-task")

    # When the group has run both messages
    group = QueueGroup([deleting, retrying])
    run = _GroupRun(group, max_threads=2)
    assert wait_until(lambda: group.stats().unprocessable == 2, timeout=20)
    run.stop()

    # Then the first queue deleted its message, the second backed it off (still there)
    assert queue_counts(sqs_client, deleting.url) == (0, 0, 0)
    assert sum(queue_counts(sqs_client, retrying.url)) == 1


def test_a_flooded_queue_does_not_starve_a_quiet_one(sqs_client: Any, make_queue: Any) -> None:
    # Given a queue flooded with 200 slow tasks (20 ms each, 2 threads: about 2 s of work)
    flood, quiet = _queue(sqs_client, make_queue("flood")), _queue(sqs_client, make_queue("q"))
    done: list[tuple[str, float]] = []
    flood.add_task_handler("work", lambda context: (time.sleep(0.02), done.append(("f", 0))))
    quiet.add_task_handler("work", lambda context: done.append(("q", time.monotonic())))
    flood.send_tasks([_task() for _ in range(200)])
    group = QueueGroup([flood, quiet])
    run = _GroupRun(group, max_threads=2, max_messages=10)
    assert wait_until(lambda: len(done) >= 20, timeout=20)  # the flood is being worked on

    # When five tasks arrive on the quiet queue
    sent = time.monotonic()
    quiet.send_tasks([_task() for _ in range(5)])
    assert wait_until(lambda: sum(1 for q, _ in done if q == "q") == 5, timeout=20)
    run.stop()

    # Then they ran while most of the flood was still waiting, each within a few seconds
    # of being sent (a receive slice of 1 s, then the next free thread), not after it
    first_quiet = next(i for i, (q, _) in enumerate(done) if q == "q")
    quiet_done = [t for q, t in done if q == "q"]
    finished_flood = sum(1 for q, _ in done[: done.index(("q", quiet_done[-1])) + 1] if q == "f")
    assert first_quiet >= 20
    assert finished_flood < 150, f"the quiet queue waited for {finished_flood} flood tasks"
    assert max(quiet_done) - sent < 5.0


def _task() -> Any:
    from sqsx import TaskMessage

    return TaskMessage("work", {})


def test_an_empty_queue_costs_one_receive_a_second_while_another_is_busy(
    endpoint_url: str, make_queue: Any
) -> None:
    # Given a busy queue and an empty one, each with its own client to count its calls
    busy_client, idle_client = make_client(endpoint_url), make_client(endpoint_url)
    calls: Counter[str] = Counter()
    idle_client.meta.events.register(
        "before-call.sqs.ReceiveMessage", lambda **_: calls.update(["idle"])
    )
    busy = Queue(url=make_queue("busy"), sqs_client=busy_client)
    idle = Queue(url=make_queue("idle"), sqs_client=idle_client)
    busy.add_task_handler("work", lambda context: time.sleep(0.005))
    busy.send_tasks([_task() for _ in range(300)])

    # When the group runs for a measured while, 8 threads (4 receivers per queue)
    group = QueueGroup([busy, idle])
    run = _GroupRun(group, max_threads=8, max_messages=10, polling_wait_seconds=10)
    assert wait_until(lambda: group.stats().processed >= 10, timeout=20)
    before, start = calls["idle"], time.monotonic()
    time.sleep(3.0)
    during, seconds = calls["idle"] - before, time.monotonic() - start
    run.stop()

    # Then the empty queue got one long poll (1 s slices) per second, by one receiver, no
    # busy loop; its other receivers stayed parked
    assert 1 <= during <= seconds + 2, f"{during} receives in {seconds:.1f} s on an empty queue"
    assert group.stats_by_queue()[busy.url].processed >= 10


def test_one_queue_stops_alone_and_the_group_goes_on(sqs_client: Any, make_queue: Any) -> None:
    # Given a running group of two queues
    first, second = _queue(sqs_client, make_queue("a")), _queue(sqs_client, make_queue("b"))
    for queue in (first, second):
        queue.add_task_handler("work", lambda context: None)
    group = QueueGroup([first, second])
    run = _GroupRun(group, max_threads=2)
    assert wait_until(lambda: first._consumer.running and second._consumer.running, timeout=10)

    # When the second queue alone is asked to stop
    second.exit_gracefully()
    assert wait_until(lambda: not second._consumer.running, timeout=15)

    # Then the first still consumes, and the second's messages wait on the queue
    first.add_task("work")
    second.add_task("work")
    assert wait_until(lambda: first.stats().succeeded == 1, timeout=15)
    assert run.thread.is_alive()
    run.stop()
    assert second.stats().received == 0
    assert queue_counts(sqs_client, second.url)[0] == 1


def test_max_messages_total_counts_every_queue_together(sqs_client: Any, make_queue: Any) -> None:
    first, second = _queue(sqs_client, make_queue("a")), _queue(sqs_client, make_queue("b"))
    for queue in (first, second):
        queue.add_task_handler("work", lambda context: None)
        queue.send_tasks([_task() for _ in range(10)])
    group = QueueGroup([first, second])
    _GroupRun(group, max_threads=2, max_messages=3, max_messages_total=7).join(60)
    assert group.stats().received == 7
    assert group.stats().succeeded == 7


def test_a_refused_queue_stops_the_group_with_its_error(sqs_client: Any, make_queue: Any) -> None:
    # Given a group with a queue that does not exist
    good = _queue(sqs_client, make_queue("good"))
    missing = _queue(sqs_client, good.url.rsplit("/", 1)[0] + "/no-such-queue")
    group = QueueGroup([good, missing])

    # When it runs, then it raises SQS's refusal and the good queue stopped too
    run = _GroupRun(group, max_threads=2)
    run.join(30)
    assert isinstance(run.error, QueueUnavailableError)
    assert "no-such-queue" in str(run.error)
    assert not good._consumer.running


def test_a_group_checks_what_it_is_given(sqs_client: Any, make_queue: Any) -> None:
    queue = _queue(sqs_client, make_queue())
    with pytest.raises(ConfigurationError, match="at least one queue"):
        QueueGroup([])
    with pytest.raises(ConfigurationError, match="the same queue twice"):
        QueueGroup([queue, queue.copy()])
    with pytest.raises(ConfigurationError, match="one weight per queue"):
        QueueGroup([queue], weights=[1, 2])
    with pytest.raises(WrongTypeError):
        QueueGroup([queue, "not a queue"])  # type: ignore[list-item]


def test_a_handler_abandoned_past_its_time_limit_is_replaced_in_the_shared_pool(
    sqs_client: Any, make_queue: Any
) -> None:
    # Given one shared thread, a queue whose handler blocks far past its 0.5 s time limit,
    # and another queue with three quick tasks
    release = threading.Event()
    stuck = _queue(sqs_client, make_queue("stuck"), time_limit=0.5, max_backoff_seconds=60)
    quick = _queue(sqs_client, make_queue("quick"))
    stuck.add_task_handler("work", lambda context: release.wait(30))  # a blocking C call
    ran: list[int] = []
    quick.add_task_handler("work", lambda context: ran.append(1))
    stuck.add_task("work")
    group = QueueGroup([stuck, quick])
    run = _GroupRun(group, max_threads=1)
    try:
        assert wait_until(lambda: group.stats_by_queue()[stuck.url].in_flight == 1, timeout=15)
        quick.send_tasks([_task() for _ in range(3)])

        # When the blocked handler is abandoned (limit + 2 s grace), then a new shared
        # thread runs the other queue's tasks while the old one is still blocked
        assert wait_until(lambda: len(ran) == 3, timeout=20)
        assert not release.is_set()
        assert group.stats_by_queue()[stuck.url].timed_out == 1
    finally:
        release.set()
        run.stop()


def test_close_from_a_shared_handler_thread_asks_and_does_not_wait(
    sqs_client: Any, make_queue: Any
) -> None:
    # Given a handler that closes its own group (waiting there would never end)
    queue = _queue(sqs_client, make_queue())
    group = QueueGroup([queue, _queue(sqs_client, make_queue())])
    closed = threading.Event()

    def close_group(context: Any) -> None:
        group.close()
        closed.set()

    queue.add_task_handler("work", close_group)
    queue.add_task("work")

    # When it runs, then close() returns at once and the run ends
    run = _GroupRun(group, max_threads=2)
    assert closed.wait(20), "close() from a handler thread blocked"
    run.join(30)
    assert queue.stats().succeeded == 1


def test_fifo_order_and_task_caps_hold_on_shared_threads(sqs_client: Any, make_queue: Any) -> None:
    # Given a FIFO queue with one group of 10 ordered tasks, and a standard queue whose
    # task is capped at one running at a time, on 4 shared threads
    fifo = _queue(sqs_client, make_queue("order", fifo=True, ContentBasedDeduplication="true"))
    capped = _queue(sqs_client, make_queue("capped"))
    order: list[int] = []
    running, most = [0], [0]
    lock = threading.Lock()

    def step(context: Any, n: int) -> None:
        time.sleep(0.01)
        order.append(n)

    def one_at_a_time(context: Any) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1

    fifo.add_task_handler("step", step)
    capped.add_task_handler("work", one_at_a_time, max_concurrency=1)
    from sqsx import TaskMessage

    fifo.send_tasks([TaskMessage("step", {"n": n}, group_id="g") for n in range(10)])
    capped.send_tasks([_task() for _ in range(8)])

    # When the group drains both
    group = QueueGroup([fifo, capped])
    _GroupRun(group, max_threads=4, max_messages=10, drain=True).join(60)

    # Then the FIFO group ran in order, and the capped task never ran twice at once
    assert order == list(range(10))
    assert capped.stats().succeeded >= 8  # moto may deliver one twice
    assert most[0] == 1


def test_exit_when_idle_waits_until_every_queue_was_idle(sqs_client: Any, make_queue: Any) -> None:
    # Given a queue with 8 tasks of 0.3 s on one thread (about 2.4 s of work) and an empty one
    busy, empty = _queue(sqs_client, make_queue("busy")), _queue(sqs_client, make_queue("e"))
    busy.add_task_handler("work", lambda context: time.sleep(0.3))
    busy.send_tasks([_task() for _ in range(8)])
    group = QueueGroup([busy, empty])

    # When the group runs with a 1 s idle limit
    run = _GroupRun(group, max_threads=1, exit_when_idle_seconds=1.0)
    assert wait_until(lambda: busy.stats().succeeded >= 5, timeout=20)  # 1.5 s in

    # Then the empty queue is still consumed while the other works (its idle time alone
    # does not end it), and the run ends by itself once both were idle
    assert empty._consumer.running
    run.join(30)
    assert run.error is None
    assert busy.stats().succeeded == 8
