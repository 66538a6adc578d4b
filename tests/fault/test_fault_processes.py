"""``sqsx worker --processes N``: a child killed mid-run, SIGTERM to the supervisor with busy
children, a module that does not import."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import queue_counts, wait_until
from faultkit import Ledger, send_tasks, work_tasks

pytestmark = pytest.mark.fault

FAULT = Path(__file__).resolve().parent
ROOT = FAULT.parents[1]


class Fleet:
    """``sqsx worker APP --processes N`` (``fleet_app:make_queue`` unless ``app`` says
    otherwise) in the background; its stderr goes to a file."""

    def __init__(
        self,
        tmp_path: Path,
        endpoint_url: str,
        queue_url: str,
        *extra: str,
        name: str = "fleet",
        app: str = "fleet_app:make_queue",
    ) -> None:
        self.record = tmp_path / "calls.txt"
        self.log_path = tmp_path / f"{name}.log"
        self._log = self.log_path.open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SQSX_", "AWS_"))}
        env.update(PYTHONUNBUFFERED="1", SQSX_TEST_RECORD=str(self.record))
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sqsx",
                "worker",
                app,
                "--app-dir",
                str(FAULT),
                "--queue-url",
                queue_url,
                "--endpoint-url",
                endpoint_url,
                "--polling-wait",
                "1",
                "--progress-interval",
                "0.5",
                *extra,
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def child_pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"started worker process \d+ pid=(\d+)", self.log())]

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def close(self) -> None:
        """Kill the supervisor and every child it started, whatever happened."""
        for pid in [*self.child_pids(), self.process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(10)
        self._log.close()


@pytest.fixture
def fleets() -> Any:
    started: list[Fleet] = []

    def start(*args: Any, **kwargs: Any) -> Fleet:
        fleet = Fleet(*args, **kwargs)
        started.append(fleet)
        return fleet

    yield start
    for fleet in started:
        fleet.close()


def _busy_fleet(
    fleets: Any, tmp_path: Path, endpoint_url: str, url: str, threads: int
) -> tuple[Fleet, list[int]]:
    """A fleet of two processes on ``url``, once every handler thread of both runs a task."""
    fleet = fleets(tmp_path, endpoint_url, url, "--processes", "2", "--threads", str(threads))
    assert wait_until(lambda: len(fleet.child_pids()) == 2, timeout=30), fleet.log()
    children = fleet.child_pids()
    assert wait_until(
        lambda: all(len(Ledger.load(fleet.record).running(pid)) == threads for pid in children),
        timeout=60,
    ), fleet.log()
    return fleet, children


def test_a_child_killed_mid_run_is_restarted_and_no_task_is_lost(
    sqs_client: Any, make_queue: Callable[..., str], endpoint_url: str, tmp_path: Path, fleets: Any
) -> None:
    # Given 40 half-second tasks on a queue with a 3 s visibility timeout, and a draining
    # fleet of two processes with four threads each
    url = make_queue("fleet-kill", VisibilityTimeout=3)
    tasks = work_tasks(40, seconds=0.5)
    send_tasks(sqs_client, url, tasks)
    fleet = fleets(tmp_path, endpoint_url, url, "--processes", "2", "--threads", "4", "--drain")
    assert wait_until(lambda: len(fleet.child_pids()) == 2, timeout=30), fleet.log()
    first, second = fleet.child_pids()

    # When one child is SIGKILLed while its handlers run
    assert wait_until(lambda: Ledger.load(fleet.record).running(first), timeout=60), fleet.log()
    cut_short = Ledger.load(fleet.record).running(first)
    os.kill(first, signal.SIGKILL)

    # Then the supervisor logs the death with the signal and starts a replacement
    assert wait_until(lambda: "killed by SIGKILL" in fleet.log(), timeout=10), fleet.log()
    assert wait_until(lambda: len(fleet.child_pids()) == 3, timeout=15), fleet.log()
    assert fleet.child_pids()[:2] == [first, second]

    # And the fleet drains the queue by itself, running every task, the killed ones again
    assert fleet.wait(90) == 0, fleet.log()[-3000:]
    audit = Ledger.load(fleet.record).audit(t["task_id"] for t in tasks)
    assert audit.unfinished == frozenset()
    assert cut_short <= Ledger.load(fleet.record).tasks("finish")
    assert queue_counts(sqs_client, url) == (0, 0, 0)
    assert "sqsx: drained after" in fleet.log()
    print(
        f"\nFAULT-FIGURES fleet_sigkill tasks={len(tasks)} lost={len(audit.unfinished)} "
        f"cut_short={len(cut_short)} duplicates={audit.duplicates}"
    )


def test_sigterm_to_the_supervisor_releases_unstarted_messages_within_2s(
    sqs_client: Any, make_queue: Callable[..., str], endpoint_url: str, tmp_path: Path, fleets: Any
) -> None:
    # Given 30 two-second tasks on a queue with a 60 s visibility timeout (a message that
    # was not given back would stay hidden for a minute), and two busy children (holding up
    # to 14 each: 4 running, 10 received)
    url = make_queue("fleet-term", VisibilityTimeout=60)
    tasks = work_tasks(30, seconds=2.0)
    send_tasks(sqs_client, url, tasks)
    fleet, children = _busy_fleet(fleets, tmp_path, endpoint_url, url, threads=4)

    # When the supervisor gets SIGTERM
    fleet.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()

    # Then within 2 s only the running messages are still in flight: the unstarted ones the
    # children held are visible again
    def only_running_in_flight() -> bool:
        ledger = Ledger.load(fleet.record)
        running = sum(len(ledger.running(pid)) for pid in children)
        return queue_counts(sqs_client, url)[1] <= running

    assert wait_until(only_running_in_flight, timeout=2.0, interval=0.1), fleet.log()[-3000:]
    released_after = time.monotonic() - signalled
    assert wait_until(lambda: "releasing" in fleet.log(), timeout=5), "nothing was held unstarted"

    # And the fleet exits 0 once the running handlers finished, holding nothing
    assert fleet.wait(30) == 0, fleet.log()[-3000:]
    at_exit = Ledger.load(fleet.record)
    assert all(at_exit.running(pid) == set() for pid in children)
    assert queue_counts(sqs_client, url) == (len(tasks) - len(at_exit.tasks("finish")), 0, 0)
    assert "stopped gracefully (SIGTERM)" in fleet.log()

    # And a second run drains the rest: nothing lost, nothing run twice
    rest = fleets(tmp_path, endpoint_url, url, "--threads", "8", "--drain", name="rest")
    assert rest.wait(90) == 0, rest.log()[-3000:]
    audit = Ledger.load(fleet.record).audit(t["task_id"] for t in tasks)
    assert audit.unfinished == frozenset()
    assert audit.duplicates == 0, sorted(audit.duplicated)
    print(
        f"\nFAULT-FIGURES fleet_sigterm tasks={len(tasks)} lost={len(audit.unfinished)} "
        f"duplicates={audit.duplicates} released_within={released_after:.2f}s"
    )


def _run_app(target: str, processes: int) -> subprocess.CompletedProcess[str]:
    """``sqsx worker TARGET --processes N`` to completion (a module that never consumes)."""
    return subprocess.run(
        [
            sys.executable, "-m", "sqsx", "worker", target, "--app-dir", str(FAULT),
            "--processes", str(processes), "--endpoint-url", "http://127.0.0.1:9",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )  # fmt: skip


def test_a_module_that_does_not_import_exits_2_without_a_restart_storm(tmp_path: Path) -> None:
    # When a fleet of three runs a module that raises on import
    started = time.monotonic()
    result = _run_app("broken_app:queue", processes=3)

    # Then it exits 2 with the import error, having started each child once
    assert result.returncode == 2, result.stderr
    assert "RuntimeError: broken on purpose" in result.stderr
    assert "exited with code 2 before it started" in result.stderr
    assert len(re.findall(r"started worker process", result.stderr)) == 3
    assert "restarting" not in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 30


def test_children_that_keep_dying_at_start_make_the_supervisor_give_up() -> None:
    # When every child is killed while it imports its module
    result = _run_app("crash_app:queue", processes=2)

    # Then the supervisor restarts them with a backoff, then gives up with exit code 2
    assert result.returncode == 2, result.stderr
    assert "died (killed by SIGKILL) before it started consuming" in result.stderr
    assert "5 worker processes in a row died before they started consuming" in result.stderr
    delays = [float(d) for d in re.findall(r"restarting it in ([\d.]+) s", result.stderr)]
    assert delays and max(delays) <= 30.0
    assert max(delays) > min(delays)  # it backs off, not at a fixed beat
    assert len(re.findall(r"started worker process", result.stderr)) <= 6


def test_children_stop_gracefully_when_the_supervisor_is_killed(
    sqs_client: Any, make_queue: Callable[..., str], endpoint_url: str, tmp_path: Path, fleets: Any
) -> None:
    # Given two busy children under a supervisor
    url = make_queue("fleet-orphan", VisibilityTimeout=60)
    tasks = work_tasks(40, seconds=1.0)
    send_tasks(sqs_client, url, tasks)
    fleet, children = _busy_fleet(fleets, tmp_path, endpoint_url, url, threads=2)

    # When the supervisor is SIGKILLed (it can forward nothing)
    fleet.process.send_signal(signal.SIGKILL)
    fleet.wait(10)

    # Then each child sees it gone, finishes its running handlers and exits
    def gone(pid: int) -> bool:  # exited: no such process, or a zombie not yet reaped
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        return stat.rsplit(")", 1)[1].split()[0] == "Z"

    assert wait_until(lambda: all(gone(pid) for pid in children), timeout=30), fleet.log()
    at_exit = Ledger.load(fleet.record)
    assert all(at_exit.running(pid) == set() for pid in children)
    # and left nothing in flight: what they held unstarted is visible again
    assert queue_counts(sqs_client, url) == (len(tasks) - len(at_exit.tasks("finish")), 0, 0)
