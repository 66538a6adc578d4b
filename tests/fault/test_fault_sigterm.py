"""SIGTERM mid-run: running handlers finish, unstarted messages come back at once, exit 0."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import queue_counts, wait_until
from faultkit import Ledger, Workers, send_tasks, work_tasks

pytestmark = pytest.mark.fault

TASKS = 32
THREADS = 8


def test_sigterm_finishes_running_handlers_and_releases_the_rest(
    sqs_client: Any,
    make_queue: Callable[..., str],
    endpoint_url: str,
    workers: Workers,
    tmp_path: Path,
) -> None:
    # Given 32 one-second tasks on a queue whose visibility timeout is 60 s: a message the
    # worker did not give back would stay invisible for a minute
    url = make_queue("term", VisibilityTimeout=60)
    tasks = work_tasks(TASKS, seconds=1.0)
    send_tasks(sqs_client, url, tasks)
    record = tmp_path / "calls.txt"
    first = workers.start(endpoint_url, url, record, threads=THREADS, max_messages=10)

    # When it gets SIGTERM while its eight handler threads are busy and more messages wait
    assert wait_until(lambda: len(Ledger.load(record).running(first.pid)) == THREADS, timeout=60)
    first.signal(signal.SIGTERM)
    signalled_at = time.time()

    # Then it exits 0 after every running handler finished
    assert first.wait(30) == 0, first.log()[-3000:]
    exited_at = time.time()
    at_exit = Ledger.load(record)
    started = at_exit.tasks("start", first.pid)
    assert started, "no handler ran before the signal"
    assert at_exit.running(first.pid) == set()
    assert "Starting graceful shutdown process" in first.log()

    # And, on the first look after the exit, no message is in flight: the unstarted ones
    # are visible again (not after 60 s) and only the finished ones are gone
    visible, in_flight, delayed = queue_counts(sqs_client, url)
    assert (visible, in_flight, delayed) == (TASKS - len(at_exit.tasks("finish")), 0, 0)
    released = sum(int(n) for n in re.findall(r"releasing (\d+) unstarted", first.log()))
    assert released >= 1, "the worker held no unstarted message at the stop"

    # When a new worker drains the queue (a thread a task, so it takes one task's time; one
    # receiver, as moto may deliver a message twice under concurrent receives)
    second = workers.start(endpoint_url, url, record, threads=TASKS, receivers=1, drain=True)
    assert second.wait(60) == 0, second.log()[-3000:]

    # Then every task ran exactly once: the stop caused no duplicate
    audit = Ledger.load(record).audit(t["task_id"] for t in tasks)
    assert audit.unfinished == frozenset()
    assert audit.duplicates == 0, sorted(audit.duplicated)
    assert queue_counts(sqs_client, url) == (0, 0, 0)
    print(
        f"\nFAULT-FIGURES sigterm tasks={TASKS} lost={len(audit.unfinished)} "
        f"duplicates={audit.duplicates} finished_before_exit={len(at_exit.tasks('finish'))} "
        f"released_unstarted={released} "
        f"visible_after_exit={visible} in_flight_after_exit={in_flight} "
        f"stop_took={exited_at - signalled_at:.1f}s"
    )


def test_a_second_sigterm_exits_at_once_and_loses_nothing(
    sqs_client: Any,
    make_queue: Callable[..., str],
    endpoint_url: str,
    workers: Workers,
    tmp_path: Path,
) -> None:
    # Given 16 four-second tasks on a queue with a 3 s visibility timeout, eight running
    url = make_queue("term-twice", VisibilityTimeout=3)
    tasks = work_tasks(16, seconds=4.0)
    send_tasks(sqs_client, url, tasks)
    record = tmp_path / "calls.txt"
    first = workers.start(endpoint_url, url, record, threads=THREADS, max_messages=10)
    assert wait_until(lambda: len(Ledger.load(record).running(first.pid)) == THREADS, timeout=60)

    # When it gets SIGTERM twice (sqsx 0.7 could deadlock here)
    first.signal(signal.SIGTERM)
    assert wait_until(lambda: "Starting graceful shutdown process" in first.log(), timeout=10)
    first.signal(signal.SIGTERM)

    # Then it exits 0 without waiting for its running handlers
    assert first.wait(15) == 0, first.log()[-3000:]
    at_exit = Ledger.load(record)
    cut_short = at_exit.running(first.pid)
    assert cut_short, "every handler finished: the second signal was not tested"
    assert "Second stop request" in first.log()

    # And a new worker still runs every task: the cut-short ones came back after the
    # visibility timeout, and they are the only duplicates (a thread a task, one receiver)
    second = workers.start(endpoint_url, url, record, threads=len(tasks), receivers=1, drain=True)
    assert second.wait(60) == 0, second.log()[-3000:]
    audit = Ledger.load(record).audit(t["task_id"] for t in tasks)
    assert audit.unfinished == frozenset()
    assert audit.duplicated <= cut_short
    assert queue_counts(sqs_client, url) == (0, 0, 0)
    print(
        f"\nFAULT-FIGURES sigterm_twice tasks={len(tasks)} lost={len(audit.unfinished)} "
        f"duplicates={audit.duplicates} cut_short={len(cut_short)}"
    )
