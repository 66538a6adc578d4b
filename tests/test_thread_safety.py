"""Thread safety: handlers change while 16 threads consume; stats stay exact under load."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from conftest import Consumer, queue_counts, wait_until

from sqsx import NoRetry, Queue, Retry
from sqsx.codec import encode_kwargs, task_attributes
from sqsx.dispatch import Outcome, Verdict
from sqsx.stats import Stats

THREADS = 16


def _send(client: Any, url: str, name: str, ids: list[str]) -> None:
    for start in range(0, len(ids), 10):
        entries = [
            {
                "Id": str(i),
                "MessageBody": encode_kwargs({"task_id": task_id}),
                "MessageAttributes": task_attributes(name),
            }
            for i, task_id in enumerate(ids[start : start + 10])
        ]
        assert not client.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")


def _message(task_name: str, n: int) -> dict[str, Any]:
    return {
        "MessageId": f"m{n}",
        "ReceiptHandle": f"r{n}",
        "Body": encode_kwargs({"task_id": str(n)}),
        "Attributes": {"ApproximateReceiveCount": "1"},
        "MessageAttributes": task_attributes(task_name),
    }


def test_sixteen_threads_processing_while_handlers_come_and_go_never_raise() -> None:
    # Given a queue whose "flappy" handler is registered and removed in a tight loop
    queue = Queue(url="http://127.0.0.1:1/000000000000/q", sqs_client=_NoSqs())
    calls = Counter[str]()
    lock = threading.Lock()

    def flappy(context: dict[str, Any], task_id: str) -> None:
        with lock:
            calls[task_id] += 1

    stop = threading.Event()

    def churn() -> None:
        n = 0
        while not stop.is_set():
            queue.add_task_handler("flappy", flappy)
            queue.add_task_handler(f"noise-{n % 50}", flappy)
            queue.remove_task_handler("flappy")
            queue.remove_task_handler(f"noise-{(n + 25) % 50}")
            n += 1

    outcomes: list[Counter[Verdict]] = [Counter() for _ in range(THREADS)]
    errors: list[BaseException] = []

    def consume(index: int) -> None:
        try:
            for n in range(500):
                outcome = queue.process(_message("flappy", index * 1000 + n))
                outcomes[index][outcome.verdict] += 1
        except BaseException as err:
            errors.append(err)

    # When 16 threads process 500 messages each meanwhile
    churner = threading.Thread(target=churn)
    churner.start()
    consumers = [threading.Thread(target=consume, args=(i,)) for i in range(THREADS)]
    try:
        for thread in consumers:
            thread.start()
        for thread in consumers:
            thread.join(60)
    finally:
        stop.set()
        churner.join(10)

    # Then no call raised, and each message either ran (handler present) or was judged
    # unprocessable (handler absent): there is no third, broken state
    assert errors == []
    total = sum(outcomes, Counter[Verdict]())
    assert set(total) <= {Verdict.SUCCEEDED, Verdict.UNPROCESSABLE}
    assert total.total() == THREADS * 500
    assert sum(calls.values()) == total[Verdict.SUCCEEDED]


class _NoSqs:
    """A stand-in client for queues used only through ``process`` (it makes no SQS call)."""

    def send_message(self, **kwargs: Any) -> Any:
        raise AssertionError("no SQS call expected")

    receive_message = delete_message_batch = send_message
    send_message_batch = change_message_visibility_batch = get_queue_attributes = send_message


def test_handlers_change_while_sixteen_threads_consume_and_every_task_runs(
    sqs_client: Any, make_queue: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given 200 "stable" tasks whose handler is replaced by new versions while consuming,
    # and 60 "flappy" tasks whose handler is missing at first, then comes and goes
    url = make_queue("churn", VisibilityTimeout=30)
    queue = Queue(url=url, sqs_client=sqs_client, min_backoff_seconds=0, max_backoff_seconds=0)
    ran: list[tuple[str, str, int]] = []
    lock = threading.Lock()

    def version(name: str, number: int) -> Callable[..., None]:
        def handler(context: dict[str, Any], task_id: str) -> None:
            with lock:
                ran.append((name, task_id, number))

        return handler

    def finished(name: str) -> set[str]:
        with lock:
            return {task_id for task, task_id, _ in ran if task == name}

    stable_ids = [f"s{i}" for i in range(200)]
    flappy_ids = [f"f{i}" for i in range(60)]
    queue.add_task_handler("stable", version("stable", 0))
    _send(sqs_client, url, "flappy", flappy_ids)
    _send(sqs_client, url, "stable", stable_ids)
    caplog.set_level(logging.INFO, logger="sqsx")

    stop_churn = threading.Event()

    def churn() -> None:
        n = 0
        while not stop_churn.wait(0.002):
            n += 1
            queue.add_task_handler("stable", version("stable", n))
            queue.add_task_handler(f"noise-{n % 20}", version("noise", n))
            queue.remove_task_handler(f"noise-{(n + 10) % 20}")
            if queue.stats().unprocessable:  # flappy only once it has been refused
                if n % 2:
                    queue.add_task_handler("flappy", version("flappy", n))
                else:
                    queue.remove_task_handler("flappy")

    # When 16 threads consume while the handlers churn, until the stable tasks are done
    consumer = Consumer(queue, max_messages=10, max_threads=THREADS)
    churner = threading.Thread(target=churn)
    churner.start()
    try:
        assert wait_until(lambda: finished("stable") >= set(stable_ids), timeout=60)
        stop_churn.set()
        churner.join(10)
        queue.add_task_handler("flappy", version("flappy", -1))
        assert wait_until(
            lambda: (
                finished("flappy") >= set(flappy_ids) and queue_counts(sqs_client, url) == (0, 0, 0)
            ),
            timeout=60,
        )
    finally:
        stop_churn.set()
        consumer.stop()

    # Then every task ran, handler replacements took effect while consuming, and nothing
    # escaped: no error line, and the counters add up
    assert finished("stable") == set(stable_ids)
    assert finished("flappy") == set(flappy_ids)
    assert len({number for name, _, number in ran if name == "stable"}) > 1
    assert not [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("sqsx") and r.levelno >= logging.ERROR
    ]
    stats = queue.stats()
    refused = [r for r in caplog.records if "unprocessable message" in r.getMessage()]
    assert stats.unprocessable == len(refused) >= 1
    assert stats.succeeded == len(ran)
    assert stats.received == stats.processed + stats.released
    assert stats.in_flight == 0


class _Fates:
    """Handlers whose fate is known in advance, counting what they did per message."""

    #: task name -> (tasks sent, deliveries each one needs)
    PLAN: ClassVar[dict[str, tuple[int, int]]] = {
        "ok": (60, 1),
        "no_retry": (20, 1),
        "retry_once": (20, 2),
        "fail_once": (10, 2),
        "unknown": (10, 1),
    }

    def __init__(self) -> None:
        self.events = Counter[str]()
        self.deliveries = Counter[str]()
        self.kinds: dict[str, str] = {}
        self._lock = threading.Lock()

    def register(self, queue: Queue) -> None:
        queue.add_task_handler("ok", self.ok)
        queue.add_task_handler("no_retry", self.no_retry)
        queue.add_task_handler("retry_once", self.retry_once)
        queue.add_task_handler("fail_once", self.fail_once)

    def note(self, event: str, message_id: str, kind: str) -> None:
        with self._lock:
            self.events[event] += 1
            self.deliveries[message_id] += 1
            self.kinds[message_id] = kind

    def _note(self, event: str, context: dict[str, Any]) -> None:
        self.note(event, context["sqs_message"]["MessageId"], context["task_name"])

    def ok(self, context: dict[str, Any], task_id: str) -> None:
        if task_id == "ok-0":
            time.sleep(0.3)
        self._note("returned", context)

    def no_retry(self, context: dict[str, Any], task_id: str) -> None:
        self._note("no_retry", context)
        raise NoRetry()

    def retry_once(self, context: dict[str, Any], task_id: str) -> None:
        if context["sqs_message"]["Attributes"]["ApproximateReceiveCount"] == "1":
            self._note("retried", context)
            raise Retry(min_backoff_seconds=0)
        self._note("returned", context)

    def fail_once(self, context: dict[str, Any], task_id: str) -> None:
        if context["sqs_message"]["Attributes"]["ApproximateReceiveCount"] == "1":
            self._note("retried", context)
            raise RuntimeError("first delivery fails")
        self._note("returned", context)

    def surplus(self) -> int:
        """Deliveries beyond what each message's fate needs (SQS delivering twice)."""
        return sum(n - self.PLAN[self.kinds[m]][1] for m, n in self.deliveries.items())


def test_stats_counters_are_exact_after_a_run_of_known_size(
    sqs_client: Any, make_queue: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given 120 tasks of known fates: 60 succeed (one of them slowly), 20 raise NoRetry,
    # 20 raise Retry and 10 raise an error on their first delivery, and 10 have no handler
    url = make_queue("stats", VisibilityTimeout=30)
    queue = Queue(
        url=url,
        sqs_client=sqs_client,
        min_backoff_seconds=0,
        max_backoff_seconds=0,
        poison_policy="delete",
    )
    fates = _Fates()
    fates.register(queue)
    for name, (count, _) in fates.PLAN.items():
        _send(sqs_client, url, name, [f"{name}-{i}" for i in range(count)])
    caplog.set_level(logging.INFO, logger="sqsx")

    # When 16 threads consume them all
    consumer = Consumer(queue, max_messages=10, max_threads=THREADS)
    try:
        assert wait_until(
            lambda: fates.events["returned"] >= 90 and queue_counts(sqs_client, url) == (0, 0, 0),
            timeout=60,
        )
    finally:
        consumer.stop()

    # Then the counters are exactly what the handlers and the log saw...
    stats = queue.stats()
    refused = [r for r in caplog.records if "unprocessable message" in r.getMessage()]
    assert stats.succeeded == fates.events["returned"]
    assert stats.no_retry == fates.events["no_retry"]
    assert stats.retried == fates.events["retried"]
    assert stats.unprocessable == len(refused)
    assert (stats.in_flight, stats.released) == (0, 0)
    assert stats.latency_max >= 0.3

    # ...and they add up to the run's 150 deliveries, plus any SQS made beyond what a
    # message's fate needs (moto may deliver a message twice under concurrent receives)
    for record in refused:
        match = re.search(r"message_id=(\S+)", record.getMessage())
        assert match is not None
        fates.note("refused", match[1], "unknown")
    assert len(fates.deliveries) == 120
    assert stats.received == stats.processed == 150 + fates.surplus()
    assert stats.succeeded >= 90 and stats.retried >= 30
    assert stats.no_retry >= 20 and stats.unprocessable >= 10
    print(f"\nstats run: 150 deliveries planned, {fates.surplus()} more made by SQS")


def test_stats_fed_by_sixteen_threads_count_exactly() -> None:
    # Given one Stats fed by 16 threads, 1,000 messages each, with a known mix of verdicts
    stats = Stats()
    verdicts = [
        Outcome(Verdict.SUCCEEDED, None, "", 0.001),
        Outcome(Verdict.NO_RETRY, None, "", 0.002),
        Outcome(Verdict.RETRIED, 5, "", 0.003),
        Outcome(Verdict.UNPROCESSABLE, 5, ""),
    ]
    start = threading.Barrier(THREADS + 1)
    inconsistent: list[str] = []

    def feed(index: int) -> None:
        start.wait(10)
        for n in range(1000):
            stats.received(1)
            stats.started()
            stats.finished(verdicts[n % 4])
            if n % 100 == 99:
                stats.released(1)

    def watch() -> None:
        start.wait(10)
        while any(t.is_alive() for t in feeders):
            snap = stats.snapshot()
            if snap.processed + snap.in_flight > snap.received or snap.in_flight < 0:
                inconsistent.append(repr(snap))

    # When they run, watched by a thread taking snapshots
    feeders = [threading.Thread(target=feed, args=(i,)) for i in range(THREADS)]
    watcher = threading.Thread(target=watch)
    for thread in [*feeders, watcher]:
        thread.start()
    for thread in [*feeders, watcher]:
        thread.join(60)

    # Then every snapshot was consistent and the totals are exact
    assert inconsistent == []
    snap = stats.snapshot()
    per_verdict = THREADS * 1000 // 4
    assert (snap.succeeded, snap.no_retry, snap.retried, snap.unprocessable) == (per_verdict,) * 4
    assert (snap.received, snap.released, snap.in_flight) == (THREADS * 1000, THREADS * 10, 0)
    assert snap.latency_max == 0.003
