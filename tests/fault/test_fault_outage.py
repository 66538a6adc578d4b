"""SQS outage: the endpoint stops answering for 10 s; the worker backs off and resumes alone."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import queue_counts, wait_until
from faultkit import Ledger, Workers, send_tasks, work_tasks
from proxy import FaultProxy, OutageMode

pytestmark = pytest.mark.fault

TASKS = 200
OUTAGE_SECONDS = 10.0


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("hang", id="accept-then-hang"),
        pytest.param("refuse", id="connection-reset"),
    ],
)
def test_worker_rides_out_a_ten_second_outage(
    mode: OutageMode,
    sqs_client: Any,
    make_queue: Callable[..., str],
    proxy: FaultProxy,
    workers: Workers,
    tmp_path: Path,
) -> None:
    # Given 200 tasks on a queue with a 15 s visibility timeout, and a draining worker that
    # reaches SQS through the proxy, with short timeouts and no botocore retries so that the
    # outage reaches sqsx at once. (A receive whose response the outage cuts off leaves its
    # messages invisible for the visibility timeout: that is the slowest part of recovery.)
    url = make_queue("outage", VisibilityTimeout=15)
    tasks = work_tasks(TASKS, seconds=0.05)
    send_tasks(sqs_client, url, tasks)
    record = tmp_path / "calls.txt"
    worker = workers.start(
        proxy.url,
        url,
        record,
        threads=4,
        drain=True,
        connect_timeout=1,
        read_timeout=3,
        polling_wait=1,
    )

    # When the endpoint stops answering for 10 s once a quarter of the tasks finished
    assert wait_until(lambda: Ledger.load(record).count("finish") >= TASKS // 4, timeout=60)
    held = queue_counts(sqs_client, url)[1]
    outage_ends = proxy.outage(OUTAGE_SECONDS, mode)
    assert wait_until(lambda: not proxy.in_outage(), timeout=OUTAGE_SECONDS + 5)
    assert worker.proc.poll() is None, "the worker died during the outage"

    # Then it resumes by itself, finishes everything and exits 0
    assert worker.wait(90) == 0, worker.log()[-3000:]
    ledger = Ledger.load(record)
    audit = ledger.audit(t["task_id"] for t in tasks)
    assert audit.unfinished == frozenset()
    assert queue_counts(sqs_client, url) == (0, 0, 0)
    assert audit.duplicates <= held, (audit.duplicates, held)

    # And it logged the failed receives with a growing delay capped at 20 s
    log = worker.log()
    delays = [float(d) for d in re.findall(r"ReceiveMessage failed: .*?retrying in ([\d.]+)s", log)]
    assert len(delays) >= 2, log[-3000:]
    assert delays[1] > delays[0]
    assert max(delays) <= 20.0
    resumed = min(c.at for c in ledger.calls if c.event == "start" and c.at >= outage_ends)
    print(
        f"\nFAULT-FIGURES outage[{mode}] tasks={TASKS} lost={len(audit.unfinished)} "
        f"duplicates={audit.duplicates} held_at_outage={held} failed_receives={len(delays)} "
        f"max_receive_delay={max(delays)}s recovered_in={resumed - outage_ends:.1f}s "
        f"connections_hung={proxy.hung} connections_reset={proxy.refused} "
        f"done_at={time.time() - outage_ends:.1f}s_after_outage"
    )
