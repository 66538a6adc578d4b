"""The queue of the hard-deadline scenarios (``sqsx worker overrun_app:make_queue
--processes N``, ``--app-dir tests/fault``).

``work(context, task_id, seconds=0.0)`` is ``worker.py``'s. ``stubborn(context, task_id,
mode)`` has a 1 s time limit and, on its first delivery only, will not stop (``mode``):

- ``spin``: pure Python that catches ``TimeLimitExceeded`` and keeps looping;
- ``sleep``: ``time.sleep`` in a loop, catching ``TimeLimitExceeded`` too;
- ``freeze``: stops its own process with SIGSTOP (no thread of it runs again);
- ``hold-gil``: a C call that holds the GIL (libc ``sleep`` through ``ctypes.PyDLL``).

The loops and the C call give up after two minutes (a stopped process waits for the
test's teardown to kill it), so a runaway never outlives a failed test for long.
Later deliveries return at once. Both record ``start`` and ``finish`` lines in the ledger
file named by ``SQSX_TEST_RECORD``. The backoff is 4 s flat, so a timed-out message is
visible again 4 s after its handler was abandoned.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from typing import Any

from worker import _Recorder, add_work_handler

from sqsx import Queue, TimeLimitExceeded
from sqsx.cli.target import make_client

LIMIT = 1.0
BACKOFF = 4
_RUNAWAY_SECONDS = 120.0


def _spin(until: float) -> None:
    while time.monotonic() < until:
        try:
            while time.monotonic() < until:
                pass
        except TimeLimitExceeded:
            continue  # swallowed: the handler carries on


def _sleep(until: float) -> None:
    while time.monotonic() < until:
        try:
            time.sleep(0.05)
        except TimeLimitExceeded:
            continue


def _freeze(until: float) -> None:
    os.kill(os.getpid(), signal.SIGSTOP)


def _hold_gil(until: float) -> None:
    ctypes.PyDLL(None).sleep(int(until - time.monotonic()))


_MODES = {"spin": _spin, "sleep": _sleep, "freeze": _freeze, "hold-gil": _hold_gil}


def make_queue() -> Queue:
    """The queue (its URL and endpoint come from ``--queue-url`` / ``--endpoint-url``)."""
    client = make_client("http://127.0.0.1:9")
    queue = Queue(
        url="http://127.0.0.1:9/000000000000/unused",
        sqs_client=client,
        min_backoff_seconds=BACKOFF,
        max_backoff_seconds=BACKOFF,
    )
    record = os.environ["SQSX_TEST_RECORD"]
    add_work_handler(queue, record)
    recorder = _Recorder(record)

    def stubborn(context: dict[str, Any], task_id: str, mode: str) -> None:
        count = context["sqs_message"]["Attributes"]["ApproximateReceiveCount"]
        recorder.write("start", task_id, count)
        if count == "1":
            _MODES[mode](time.monotonic() + _RUNAWAY_SECONDS)
        recorder.write("finish", task_id, count)

    queue.add_task_handler("stubborn", stubborn, time_limit=LIMIT)
    return queue
