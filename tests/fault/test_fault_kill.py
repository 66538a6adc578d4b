"""SIGKILL mid-run: a worker process killed while busy loses nothing once restarted."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import queue_counts, wait_until
from faultkit import Ledger, Workers, send_tasks, work_tasks

pytestmark = pytest.mark.fault

TASKS = 300
THREADS = 8


def test_sigkill_mid_run_then_restart_loses_nothing(
    sqs_client: Any,
    make_queue: Callable[..., str],
    endpoint_url: str,
    workers: Workers,
    tmp_path: Path,
) -> None:
    # Given 300 tasks on a queue with a 2 s visibility timeout, and an 8-thread worker
    url = make_queue("kill", VisibilityTimeout=2)
    tasks = work_tasks(TASKS, seconds=0.1)
    send_tasks(sqs_client, url, tasks)
    record = tmp_path / "calls.txt"
    first = workers.start(endpoint_url, url, record, threads=THREADS)

    # When it is killed with SIGKILL once a third of the tasks finished, while handlers run
    def busy() -> bool:
        ledger = Ledger.load(record)
        return ledger.count("finish") >= TASKS // 3 and len(ledger.running(first.pid)) >= 4

    assert wait_until(busy, timeout=60, interval=0.01)
    first.signal(signal.SIGKILL)
    killed_at = time.time()
    assert first.wait(10) == -signal.SIGKILL
    at_kill = Ledger.load(record)
    visible, in_flight, _ = queue_counts(sqs_client, url)

    # Then no message was deleted without its handler finishing first
    deleted = TASKS - visible - in_flight
    assert deleted <= len(at_kill.tasks("finish")), (deleted, len(at_kill.tasks("finish")))

    # When a new worker drains the queue
    second = workers.start(endpoint_url, url, record, threads=THREADS, drain=True)
    assert second.wait(90) == 0, second.log()[-3000:]

    # Then every task finished, the queue is empty, and the only duplicates are messages the
    # killed worker held (SQS's in-flight count at the kill bounds them)
    ledger = Ledger.load(record)
    audit = ledger.audit(t["task_id"] for t in tasks)
    assert audit.unfinished == frozenset()
    assert queue_counts(sqs_client, url) == (0, 0, 0)
    assert audit.duplicates <= in_flight, (audit.duplicates, in_flight)
    unexplained = audit.duplicated - at_kill.tasks("start", first.pid) - at_kill.tasks("finish")
    assert not unexplained, (
        "\n".join(
            f"{c.event} {c.task_id} pid={c.pid} count={c.receive_count} at={c.at - killed_at:+.3f}s"
            for c in ledger.calls
            if c.task_id in unexplained
        )
        + f"\nfirst={first.pid} second={second.pid}"
    )
    print(
        f"\nFAULT-FIGURES sigkill tasks={TASKS} lost={len(audit.unfinished)} "
        f"duplicates={audit.duplicates} handlers_running_at_kill="
        f"{len(at_kill.running(first.pid))} sqs_in_flight_at_kill={in_flight} "
        f"deleted_at_kill={deleted} "
        f"recovered_in={max(c.at for c in ledger.calls) - killed_at:.1f}s"
    )
