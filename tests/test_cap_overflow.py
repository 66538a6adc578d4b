"""A capped task's backlog past what the worker keeps goes back to SQS (``sqsx.caps``), so
that it cannot fill the worker's room and starve the other tasks; never into the
dead-letter queue."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from conftest import Consumer, queue_counts, wait_until

from sqsx import Queue, TaskMessage
from sqsx.caps import OVERFLOW_DELAY_CAP_SECONDS, ConcurrencyCaps, keep_waiting
from sqsx.message import Message


def _message(task: str, n: int, receives: int = 1) -> Message:
    return Message.from_boto3(
        {
            "MessageId": f"{task}{n}",
            "ReceiptHandle": f"r-{task}{n}",
            "MessageAttributes": {"TaskName": {"DataType": "String", "StringValue": task}},
            "Attributes": {"ApproximateReceiveCount": str(receives)},
        }
    )


def _arrive(caps: ConcurrencyCaps, waiting: deque[Message], batch: list[Message]) -> list[Any]:
    waiting.extend(batch)
    caps.waiting(batch, now=0)
    return caps.overflow(batch, waiting)


def _run_one(caps: ConcurrencyCaps, message: Message, seconds: float) -> None:
    caps.started(message)
    time.sleep(seconds)
    caps.finished(message)


def test_the_worker_keeps_a_line_of_a_capped_task_and_gives_back_the_newest() -> None:
    # Given a task capped at 2 (the worker keeps 10 of it waiting), no redrive policy
    caps = ConcurrencyCaps(lambda: {"capped": 2})
    caps.max_receive_count = 0
    waiting: deque[Message] = deque()
    assert keep_waiting(2) == 10 and keep_waiting(8) == 16

    # When a receive brings 8 of it and one free message, nothing goes back
    first = [_message("capped", n) for n in range(8)] + [_message("free", 0)]
    assert _arrive(caps, waiting, first) == []

    # Then of the next 7 the newest 5 go back (in arrival order): 1 s while its run time is
    # unmeasured; the free message stays
    second = [_message("capped", n) for n in range(8, 15)] + [_message("free", 1)]
    back = _arrive(caps, waiting, second)
    assert [h.item.message_id for h in back] == [f"capped{n}" for n in range(10, 15)]
    assert {h.seconds for h in back} == {1}
    assert [m.message_id for m in waiting].count("free1") == 1
    assert sum(m.message_id.startswith("capped") for m in waiting) == 10
    assert caps.blocked(waiting) == 8  # two may start; the cap holds back 8 of the 10 kept


def test_given_back_messages_come_back_when_the_cap_should_have_room() -> None:
    # Given a task capped at 2 whose messages took about 0.2 s
    caps = ConcurrencyCaps(lambda: {"capped": 2})
    caps.max_receive_count = 0
    for n in range(3):
        _run_one(caps, _message("done", n), 0.0)  # an uncapped task: not measured
    ran = _message("capped", 99)
    caps.waiting([ran], now=0)
    _run_one(caps, ran, 0.2)
    waiting: deque[Message] = deque()
    _arrive(caps, waiting, [_message("capped", n) for n in range(10)])

    # When 30 more arrive: the worker keeps 2 s of the cap's work (20), and the 20 past
    # that go back, spaced at the pace the cap runs them (0.2 s / 2) after those kept:
    # from about 2.1 s to about 4 s, rounded up
    assert keep_waiting(2, 0.2) == 20 and keep_waiting(2, 0.001) == 100
    back = _arrive(caps, waiting, [_message("capped", n) for n in range(10, 40)])
    delays = {h.item.message_id: h.seconds for h in back}
    assert list(delays) == [f"capped{n}" for n in range(20, 40)]
    assert delays["capped20"] == 3 and delays["capped39"] in (4, 5)
    assert sorted(delays.values()) == list(delays.values())

    # And those given back by a later receive come back after them, not with them
    later = _arrive(caps, waiting, [_message("capped", n) for n in range(40, 50)])
    assert min(h.seconds for h in later) >= delays["capped39"]
    assert max(h.seconds for h in later) in (5, 6)

    # With room for one more in the line, a message given back before takes it rather than
    # a fresh one
    caps.started(waiting.popleft())
    again = [_message("capped", 50), _message("capped", 10, receives=2)]
    assert [h.item.message_id for h in _arrive(caps, waiting, again)] == ["capped50"]


def test_no_message_is_given_back_without_two_receives_to_spare() -> None:
    caps = ConcurrencyCaps(lambda: {"capped": 1})
    waiting: deque[Message] = deque()
    # With the redrive policy not known, everything is held
    assert _arrive(caps, waiting, [_message("capped", n) for n in range(30)]) == []
    # With maxReceiveCount 4, a message received 3 times is held, one received twice goes back
    caps.max_receive_count = 4
    back = _arrive(caps, waiting, [_message("capped", 30, receives=3), _message("capped", 31, 2)])
    assert [h.item.message_id for h in back] == ["capped31"]


def test_a_give_back_never_hides_a_message_longer_than_the_cap() -> None:
    caps = ConcurrencyCaps(lambda: {"capped": 1})
    caps.max_receive_count = 0
    slow = _message("capped", -1)
    caps.waiting([slow], now=0)
    caps.started(slow)
    caps._started[id(slow)] -= 3600  # it ran for an hour (measured as such)
    caps.finished(slow)
    waiting: deque[Message] = deque()
    _arrive(caps, waiting, [_message("capped", n) for n in range(10)])
    back = _arrive(caps, waiting, [_message("capped", 10)])
    assert [h.seconds for h in back] == [OVERFLOW_DELAY_CAP_SECONDS]


def test_a_capped_backlog_goes_back_to_sqs_while_other_tasks_run_and_none_is_lost(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given 60 messages of a task capped at 1 ahead of 40 quick ones, on 4 threads
    url = make_queue(VisibilityTimeout=30)
    queue = Queue(url, sqs_client)
    finished: list[str] = []
    lock = threading.Lock()
    running = {"capped": 0, "most": 0}

    def capped(context: dict[str, Any], n: int) -> None:
        with lock:
            running["capped"] += 1
            running["most"] = max(running["most"], running["capped"])
        time.sleep(0.05)
        with lock:
            running["capped"] -= 1
        finished.append("capped")

    queue.add_task_handler("capped", capped, max_concurrency=1)
    queue.add_task_handler("quick", lambda context, n: finished.append("quick"))
    assert all(r.ok for r in queue.send_tasks([TaskMessage("capped", {"n": n}) for n in range(60)]))
    assert all(r.ok for r in queue.send_tasks([TaskMessage("quick", {"n": n}) for n in range(40)]))

    # When a worker drains the queue
    consumer = Consumer(queue, max_threads=4, max_messages=10)
    try:
        assert wait_until(lambda: finished.count("quick") == 40, timeout=30)
        capped_by_then = finished.count("capped")
        given_back = queue.stats().released
        assert wait_until(lambda: finished.count("capped") == 60, timeout=90)
        assert wait_until(lambda: queue_counts(sqs_client, url) == (0, 0, 0), timeout=30)
    finally:
        consumer.stop()

    # Then the quick ones did not wait for the capped backlog (a cap of 1 at 50 ms runs
    # about 20 a second; held whole, the backlog would have taken the worker's room),
    # the backlog went back to SQS rather than being held, and every message ran once
    assert capped_by_then < 40
    assert given_back > 0
    assert running["most"] == 1
    assert finished.count("capped") == 60 and finished.count("quick") == 40


def test_with_one_receive_to_spare_a_capped_backlog_is_held_not_dead_lettered(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given a queue whose messages go to a dead-letter queue after 2 receives
    dlq = make_queue("dlq")
    arn = sqs_client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    policy = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": "2"}
    url = make_queue(VisibilityTimeout=30, RedrivePolicy=json.dumps(policy))
    queue = Queue(url, sqs_client)
    ran: list[int] = []

    def capped(context: dict[str, Any], n: int) -> None:
        time.sleep(0.02)
        ran.append(n)

    queue.add_task_handler("capped", capped, max_concurrency=1)
    assert all(r.ok for r in queue.send_tasks([TaskMessage("capped", {"n": n}) for n in range(40)]))

    # When a worker drains it
    consumer = Consumer(queue, max_threads=4, max_messages=10)
    try:
        assert wait_until(lambda: len(ran) == 40, timeout=60)
        released = queue.stats().released
    finally:
        consumer.stop()

    # Then nothing was given back (a give-back would have left no receive to spare), every
    # message ran once, and the dead-letter queue is empty
    assert released == 0
    assert sorted(ran) == list(range(40))
    assert queue_counts(sqs_client, dlq) == (0, 0, 0)


def test_a_fifo_queue_holds_its_capped_backlog_in_order(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given a FIFO queue (order forbids giving back) and a capped task of one group
    url = make_queue(fifo=True, ContentBasedDeduplication="true", VisibilityTimeout=30)
    queue = Queue(url, sqs_client)
    ran: list[int] = []
    queue.add_task_handler("capped", lambda context, n: ran.append(n), max_concurrency=1)
    for n in range(25):
        queue.send_task("capped", {"n": n}, group_id="g")

    # When a worker drains it
    consumer = Consumer(queue, max_threads=4, max_messages=10)
    try:
        assert wait_until(lambda: len(ran) == 25, timeout=60)
        released = queue.stats().released
    finally:
        consumer.stop()

    # Then the group ran in order and nothing was given back
    assert ran == list(range(25)) and released == 0
