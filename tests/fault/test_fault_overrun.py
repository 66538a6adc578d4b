"""``sqsx worker --processes N`` and handlers that will not stop: one that ignores its time
limit past the hard deadline gets its process restarted (exit 75), one that freezes its
process is killed by the supervisor's watchdog. Nothing is lost either way."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import queue_counts
from faultkit import Call, Ledger, send_tasks, work_tasks
from overrun_app import BACKOFF, LIMIT
from test_fault_processes import fleets

from sqsx.timelimits import DEFAULT_GRACE_SECONDS

pytestmark = pytest.mark.fault

__all__ = ["fleets"]  # the fixture, used by name

HARD_KILL_AFTER = 1.0
SILENT_AFTER = 4.0


def _send(sqs_client: Any, url: str, mode: str) -> list[dict[str, Any]]:
    send_tasks(sqs_client, url, [{"task_id": "stubborn", "mode": mode}], name="stubborn")
    tasks = work_tasks(20, seconds=0.2)
    send_tasks(sqs_client, url, tasks)
    return tasks


def _drain(fleets: Any, tmp_path: Path, endpoint_url: str, url: str, *extra: str) -> Any:
    """A draining fleet of two processes x two threads on ``url`` with ``extra`` options,
    run to its end: its exit code, its log and the ledger."""
    fleet = fleets(
        tmp_path, endpoint_url, url, "--processes", "2", "--threads", "2", "--drain", *extra,
        app="overrun_app:make_queue",
    )  # fmt: skip
    code = fleet.wait(120)
    return code, fleet.log(), Ledger.load(fleet.record)


def _starts(ledger: Ledger, task_id: str) -> list[Call]:
    return sorted(
        (c for c in ledger.calls if c.task_id == task_id and c.event == "start"),
        key=lambda c: c.at,
    )


@pytest.mark.parametrize("mode", ["spin", "sleep"])
def test_a_handler_that_ignores_its_time_limit_gets_its_process_restarted(
    sqs_client: Any,
    make_queue: Callable[..., str],
    endpoint_url: str,
    tmp_path: Path,
    fleets: Any,
    mode: str,
) -> None:
    # Given a stubborn task (1 s limit, 4 s backoff) that swallows TimeLimitExceeded and
    # keeps running, sent before 20 quick tasks, on a queue with a 60 s visibility timeout
    # (without its backoff the message would stay hidden for a minute)
    url = make_queue("overrun", VisibilityTimeout=60)
    tasks = _send(sqs_client, url, mode)

    # When a draining fleet of two processes runs them with a 1 s --hard-kill-after
    code, log, ledger = _drain(
        fleets, tmp_path, endpoint_url, url, "--stop-timeout", "10",
        "--hard-kill-after", str(HARD_KILL_AFTER),
    )  # fmt: skip

    # Then the fleet drained the queue (exit 0) and every task finished, the stubborn one
    # on its second delivery
    assert code == 0, log[-4000:]
    audit = ledger.audit([*(t["task_id"] for t in tasks), "stubborn"])
    assert audit.unfinished == frozenset(), log[-4000:]
    assert queue_counts(sqs_client, url) == (0, 0, 0)

    # And the process that ran it ended itself for the runaway handler and was replaced:
    # the supervisor names the message and task the child abandoned
    abandoned = re.findall(r"abandoned, its thread replaced message_id=(\S+) task=stubborn", log)
    restarted = re.findall(
        r"worker process \d restarted: a handler ignored its time limit "
        r"\(message_id=(\S+) task=stubborn, time limit 1.0 s",
        log,
    )
    assert len(abandoned) == 1 and restarted == abandoned, log[-4000:]
    assert len(re.findall(r"started worker process \d pid=", log)) == 3, log[-4000:]
    assert "died" not in log  # not a crash

    # And the message came back after its backoff, counted from its abandonment (limit +
    # grace after its start), well before its 60 s visibility timeout
    first, second = _starts(ledger, "stubborn")[:2]
    assert (first.receive_count, second.receive_count) == (1, 2)
    back_after = second.at - first.at
    abandon_at = LIMIT + DEFAULT_GRACE_SECONDS
    assert abandon_at + BACKOFF - 1.0 <= back_after < 30.0
    # the quick tasks were not held up: most ran while the runaway handler still ran
    kill_by = first.at + abandon_at + HARD_KILL_AFTER
    assert sum(c.at < kill_by for c in ledger.calls if c.event == "finish") >= 5
    print(
        f"\nFAULT-FIGURES overrun mode={mode} tasks={len(tasks) + 1} "
        f"lost={len(audit.unfinished)} duplicates={audit.duplicates} "
        f"visible_again_after_start={back_after:.2f}s (abandoned at {abandon_at:g}s, "
        f"backoff {BACKOFF}s)"
    )


@pytest.mark.parametrize("mode", ["freeze", "hold-gil"])
def test_a_frozen_child_is_killed_by_the_watchdog_and_replaced(
    sqs_client: Any,
    make_queue: Callable[..., str],
    endpoint_url: str,
    tmp_path: Path,
    fleets: Any,
    mode: str,
) -> None:
    # Given a task that freezes its whole process on its first delivery (SIGSTOP, or a C
    # call holding the GIL), sent before 20 quick tasks, on a queue with a 5 s visibility
    # timeout
    url = make_queue("frozen", VisibilityTimeout=5)
    tasks = _send(sqs_client, url, mode)

    # When a draining fleet of two processes runs them with a 4 s --kill-silent-after
    code, log, ledger = _drain(
        fleets, tmp_path, endpoint_url, url, "--kill-silent-after", str(SILENT_AFTER)
    )

    # Then the supervisor killed the silent child (the one that ran the task) and
    # restarted it, and the fleet drained the queue: every task finished
    assert code == 0, log[-4000:]
    first, second = _starts(ledger, "stubborn")[:2]
    killed = re.findall(r"worker process \d pid=(\d+) sent nothing for ([\d.]+) s", log)
    assert [int(pid) for pid, _ in killed] == [first.pid], log[-4000:]
    assert SILENT_AFTER <= float(killed[0][1]) < SILENT_AFTER + 5  # logged to 0.1 s
    assert re.search(r"died \(killed by SIGKILL after [\d.]+ s of silence\); restarting", log)
    assert len(re.findall(r"started worker process \d pid=", log)) == 3
    audit = ledger.audit([*(t["task_id"] for t in tasks), "stubborn"])
    assert audit.unfinished == frozenset(), log[-4000:]
    assert queue_counts(sqs_client, url) == (0, 0, 0)

    # And its message came back once its visibility timeout ended (nothing extended it)
    assert (first.receive_count, second.receive_count) == (1, 2)
    back_after = second.at - first.at
    assert 5 - 1.0 <= back_after < 30.0
    print(
        f"\nFAULT-FIGURES frozen mode={mode} tasks={len(tasks) + 1} "
        f"lost={len(audit.unfinished)} duplicates={audit.duplicates} "
        f"killed_after_silence={float(killed[0][1]):.1f}s visible_again_after={back_after:.2f}s"
    )
