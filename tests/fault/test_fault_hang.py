"""SQS hangs (connections accepted, nothing answered) when the worker is told to stop.

The stop must still end within ``stop_timeout`` + the receive wait (``polling_wait_seconds``
+ 5 s) + the flush bound (10 s), say in one line what SQS did not confirm, and the process
must exit: calls still blocked in a socket read run on daemon threads. A second signal
ends it at once.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import queue_counts, wait_until
from faultkit import Ledger, WorkerProcess, Workers, send_tasks, work_tasks
from proxy import FaultProxy

pytestmark = pytest.mark.fault

TASKS = 24
THREADS = 8
POLL = 1
STOP_TIMEOUT = 4.0
# sqsx's documented bounds (README, "Stopping"): the receive wait and the flush.
RECEIVE_BOUND = POLL + 5.0
FLUSH_BOUND = 10.0
SLACK = 4.0  # process start-up of the interpreter exit, a loaded CI machine


def _stop_while_sqs_hangs(
    sqs_client: Any,
    make_queue: Callable[..., str],
    proxy: FaultProxy,
    workers: Workers,
    record: Path,
) -> tuple[WorkerProcess, str, list[dict[str, Any]]]:
    """24 two-second tasks (6 s visibility timeout), eight of them running in a worker that
    reaches SQS through the proxy (with sqsx's recommended client configuration); then SQS
    stops answering altogether and the worker gets SIGTERM."""
    url = make_queue("hang", VisibilityTimeout=6)
    tasks = work_tasks(TASKS, seconds=2.0)
    send_tasks(sqs_client, url, tasks)
    worker = workers.start(
        proxy.url,
        url,
        record,
        threads=THREADS,
        polling_wait=POLL,
        sqsx_config=True,  # the timeouts and retries sqsx recommends (sqsx.timeouts.client_config)
        stop_timeout=STOP_TIMEOUT,
    )
    assert wait_until(lambda: len(Ledger.load(record).running(worker.pid)) == THREADS, timeout=60)
    proxy.outage(None, "stall")
    worker.signal(signal.SIGTERM)
    return worker, url, tasks


def _drain(endpoint_url: str, url: str, record: Path, workers: Workers, proxy: FaultProxy) -> None:
    """Once SQS answers again, a second worker drains the queue (directly): a thread a task,
    so that it takes one task's time, and one receiver, as in every scenario here (moto may
    deliver a message twice under concurrent receives)."""
    proxy.close()
    second = workers.start(endpoint_url, url, record, threads=TASKS, receivers=1, drain=True)
    assert second.wait(90) == 0, second.log()[-3000:]


def test_sigterm_is_bounded_when_sqs_hangs(
    sqs_client: Any,
    make_queue: Callable[..., str],
    endpoint_url: str,
    proxy: FaultProxy,
    workers: Workers,
    tmp_path: Path,
) -> None:
    # Given a worker with eight tasks running, told to stop while SQS hangs
    record = tmp_path / "calls.txt"
    worker, url, tasks = _stop_while_sqs_hangs(sqs_client, make_queue, proxy, workers, record)
    signalled = time.monotonic()

    # Then it exits 0 within the documented bound, the handlers having finished
    bound = STOP_TIMEOUT + RECEIVE_BOUND + FLUSH_BOUND + SLACK
    assert worker.wait(bound) == 0, worker.log()[-3000:]
    took = time.monotonic() - signalled
    at_exit = Ledger.load(record)
    assert at_exit.running(worker.pid) == set()

    # And it said in one line what SQS did not confirm
    log = worker.log()
    lines = re.findall(r"stopped without SQS confirming (\d+) deletes and (\d+) visibility.*", log)
    assert len(lines) == 1, log[-3000:]
    unconfirmed_deletes = int(lines[0][0])
    assert unconfirmed_deletes >= 1, "no delete was caught by the hang"

    # When SQS answers again and a second worker drains the queue
    _drain(endpoint_url, url, record, workers, proxy)

    # Then nothing was lost; what ran twice is what the hung worker held at the stop
    audit = Ledger.load(record).audit(t["task_id"] for t in tasks)
    assert audit.unfinished == frozenset()
    assert audit.duplicated <= at_exit.tasks("start", worker.pid)
    assert queue_counts(sqs_client, url) == (0, 0, 0)
    print(
        f"\nFAULT-FIGURES hang_sigterm tasks={TASKS} lost={len(audit.unfinished)} "
        f"duplicates={audit.duplicates} stop_took={took:.1f}s bound={bound:.0f}s "
        f"unconfirmed_deletes={unconfirmed_deletes} connections_hung={proxy.hung}"
    )


def test_a_second_sigterm_ends_at_once_when_sqs_hangs(
    sqs_client: Any,
    make_queue: Callable[..., str],
    endpoint_url: str,
    proxy: FaultProxy,
    workers: Workers,
    tmp_path: Path,
) -> None:
    # Given a worker whose stop is waiting on SQS, which hangs
    record = tmp_path / "calls.txt"
    worker, url, tasks = _stop_while_sqs_hangs(sqs_client, make_queue, proxy, workers, record)
    assert wait_until(lambda: "Starting graceful shutdown" in worker.log(), timeout=10)
    # the handlers finish, then the stop waits on the hung receive or flush
    assert wait_until(lambda: not Ledger.load(record).running(worker.pid), timeout=10)

    # When a second SIGTERM arrives
    time.sleep(0.5)  # into the wait on SQS; no state to observe from outside
    worker.signal(signal.SIGTERM)
    second_at = time.monotonic()

    # Then the process ends at once, and says what it could not confirm
    assert worker.wait(5) == 0, worker.log()[-3000:]
    took = time.monotonic() - second_at
    assert "Second stop request" in worker.log()
    assert "stopped without SQS confirming" in worker.log()

    # And a drain afterwards loses nothing
    _drain(endpoint_url, url, record, workers, proxy)
    audit = Ledger.load(record).audit(t["task_id"] for t in tasks)
    assert audit.unfinished == frozenset()
    print(
        f"\nFAULT-FIGURES hang_sigterm_twice tasks={TASKS} lost={len(audit.unfinished)} "
        f"duplicates={audit.duplicates} exit_after_second_signal={took:.1f}s"
    )
