"""Shared helpers of the fault suite: the handler-call ledger, sending tasks, worker processes.

Not named ``conftest.py`` on purpose: a second ``conftest`` module would shadow the
top-level one for every ``from conftest import ...`` in the suite.

Every scenario records each handler call as a line ``EVENT TASK_ID PID RECEIVE_COUNT TIME``
(``EVENT`` is ``start`` or ``finish``; ``TIME`` is ``time.time()``), either in memory
(``Ledger.record``) or in a file that a worker process appends to (``Ledger.load``), and
then audits the run with ``Ledger.audit``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqsx.codec import encode_kwargs, task_attributes

WORKER = Path(__file__).with_name("worker.py")


@dataclass(frozen=True, slots=True)
class Call:
    """One line of the ledger."""

    event: str
    task_id: str
    pid: int
    receive_count: int
    at: float


@dataclass(frozen=True, slots=True)
class Audit:
    """What a run did to a known set of tasks.

    Attributes:
        tasks: tasks enqueued.
        unfinished: tasks whose handler never returned (lost, unless still on the queue).
        duplicates: handler starts beyond the first, summed over tasks.
        duplicated: tasks that started more than once.
        starts: handler starts in all.
    """

    tasks: int
    unfinished: frozenset[str]
    duplicates: int
    duplicated: frozenset[str]
    starts: int


class Ledger:
    """Handler calls of one scenario, recorded in memory or read from a worker's file."""

    def __init__(self, calls: Iterable[Call] = ()) -> None:
        self._lock = threading.Lock()
        self._calls: list[Call] = list(calls)

    @classmethod
    def load(cls, path: Path) -> Ledger:
        """Read the lines a worker process appended to ``path`` (a missing file is empty)."""
        if not path.exists():
            return cls()
        calls = []
        for line in path.read_text().splitlines():
            event, task_id, pid, count, at = line.split()
            calls.append(Call(event, task_id, int(pid), int(count), float(at)))
        return cls(calls)

    def record(self, event: str, task_id: str, receive_count: int) -> None:
        """Append one call made in this process."""
        with self._lock:
            self._calls.append(Call(event, task_id, os.getpid(), receive_count, time.time()))

    @property
    def calls(self) -> list[Call]:
        """Every call so far, in recording order."""
        with self._lock:
            return list(self._calls)

    def tasks(self, event: str, pid: int | None = None) -> set[str]:
        """Task ids with at least one ``event`` (made by ``pid``, when given)."""
        return {c.task_id for c in self.calls if c.event == event and pid in (None, c.pid)}

    def count(self, event: str) -> int:
        """Number of ``event`` lines."""
        return sum(c.event == event for c in self.calls)

    def running(self, pid: int) -> set[str]:
        """Tasks ``pid`` started and did not finish (its handlers in flight)."""
        starts = Counter(c.task_id for c in self.calls if c.event == "start" and c.pid == pid)
        finishes = Counter(c.task_id for c in self.calls if c.event == "finish" and c.pid == pid)
        return set((starts - finishes).keys())

    def audit(self, task_ids: Iterable[str]) -> Audit:
        """Compare the calls with the tasks that were enqueued."""
        ids = set(task_ids)
        starts = Counter(c.task_id for c in self.calls if c.event == "start")
        unknown = set(starts) - ids
        assert not unknown, f"handler ran tasks that were never sent: {sorted(unknown)[:5]}"
        duplicated = frozenset(t for t, n in starts.items() if n > 1)
        return Audit(
            tasks=len(ids),
            unfinished=frozenset(ids - self.tasks("finish")),
            duplicates=sum(n - 1 for n in starts.values()),
            duplicated=duplicated,
            starts=sum(starts.values()),
        )


def send_tasks(client: Any, url: str, tasks: Iterable[dict[str, Any]], name: str = "work") -> None:
    """Send ``name`` tasks with the given kwargs, ten to a SendMessageBatch call."""
    batch: list[dict[str, Any]] = []
    for i, kwargs in enumerate(tasks):
        batch.append(
            {
                "Id": str(i % 10),
                "MessageBody": encode_kwargs(kwargs),
                "MessageAttributes": task_attributes(name),
            }
        )
        if len(batch) == 10:
            _send_batch(client, url, batch)
            batch = []
    if batch:
        _send_batch(client, url, batch)


def _send_batch(client: Any, url: str, batch: list[dict[str, Any]]) -> None:
    response = client.send_message_batch(QueueUrl=url, Entries=batch)
    assert not response.get("Failed"), response["Failed"]


def work_tasks(count: int, seconds: float = 0.0, prefix: str = "t") -> list[dict[str, Any]]:
    """Kwargs of ``count`` ``work`` tasks with distinct ids, each running ``seconds``."""
    return [{"task_id": f"{prefix}{i:04d}", "seconds": seconds} for i in range(count)]


class WorkerProcess:
    """``worker.py`` in a subprocess; its log (stdout and stderr) goes to ``log_path``.

    Args:
        endpoint_url: the SQS endpoint the worker talks to (the server, or a proxy).
        queue_url: the queue it consumes.
        record: the ledger file it appends handler calls to.
        log_path: where its output goes.
        options: more ``worker.py`` options, as ``--name value`` (``True`` for a flag).
    """

    def __init__(
        self, endpoint_url: str, queue_url: str, record: Path, log_path: Path, **options: Any
    ) -> None:
        argv = [
            sys.executable,
            str(WORKER),
            "--endpoint",
            endpoint_url,
            "--queue-url",
            queue_url,
            "--record",
            str(record),
        ]
        for name, value in options.items():
            flag = "--" + name.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif value not in (False, None):
                argv += [flag, str(value)]
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the worker."""
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the exit; returns the exit code."""
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.flush()

    def log(self) -> str:
        """The worker's output so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        """Kill the worker if it still runs (test teardown)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


class Workers:
    """Worker processes started by one test, killed at its end whatever happened."""

    def __init__(self, tmp_path: Path) -> None:
        self._tmp_path = tmp_path
        self._started: list[WorkerProcess] = []

    def start(
        self, endpoint_url: str, queue_url: str, record: Path, **options: Any
    ) -> WorkerProcess:
        """Start one more ``worker.py`` (see ``WorkerProcess``)."""
        log_path = self._tmp_path / f"worker-{len(self._started)}.log"
        worker = WorkerProcess(endpoint_url, queue_url, record, log_path, **options)
        self._started.append(worker)
        return worker

    def close(self) -> None:
        """Kill what still runs."""
        for worker in self._started:
            worker.close()

    def __iter__(self) -> Iterator[WorkerProcess]:
        return iter(self._started)
