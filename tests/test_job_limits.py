"""Jobs that end: ``max_messages_total`` / ``--max-messages-total`` and
``exit_when_idle_seconds`` / ``--exit-when-idle``, on the local SQS server and as pure logic."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CallCounter, make_client, queue_counts
from test_cli import TESTS, run_sqsx

from sqsx import ConsumeOptions, Queue
from sqsx.exceptions import ConfigurationError
from sqsx.limits import RunLimits

# -- RunLimits ---------------------------------------------------------------------------------


def test_the_budget_grants_what_is_left_and_takes_back_what_a_receive_did_not_bring() -> None:
    limits = RunLimits(max_messages_total=12, exit_when_idle_seconds=None)
    assert limits.take(10) == 10
    assert limits.take(10) == 2
    assert limits.spent()
    assert limits.take(10) == 0
    limits.give_back(7)  # the first receive brought 3
    assert not limits.spent()
    assert limits.take(10) == 7
    assert limits.spent()


def test_without_a_budget_every_receive_gets_what_it_asks() -> None:
    limits = RunLimits(max_messages_total=None, exit_when_idle_seconds=None)
    assert [limits.take(10) for _ in range(3)] == [10, 10, 10]
    assert not limits.spent()
    assert not limits.idle_expired(busy=False)


def test_the_idle_clock_restarts_while_busy() -> None:
    limits = RunLimits(max_messages_total=None, exit_when_idle_seconds=0.2)
    assert not limits.idle_expired(busy=False)
    time.sleep(0.25)
    assert not limits.idle_expired(busy=True)  # messages held: not idle, clock restarts
    assert not limits.idle_expired(busy=False)
    time.sleep(0.25)
    assert limits.idle_expired(busy=False)


def test_the_options_refuse_a_zero_budget_and_a_zero_idle_time() -> None:
    with pytest.raises(ConfigurationError, match="max_messages_total"):
        ConsumeOptions(max_messages_total=0)
    with pytest.raises(ConfigurationError, match="exit_when_idle_seconds"):
        ConsumeOptions(exit_when_idle_seconds=0)


# -- the engine on the server ------------------------------------------------------------------


def _queue(endpoint_url: str, url: str, done: list[int]) -> Queue:
    queue = Queue(url=url, sqs_client=make_client(endpoint_url), min_backoff_seconds=1)
    lock = threading.Lock()

    def record(context: dict[str, Any], n: int) -> None:
        with lock:
            done.append(n)

    queue.add_task_handler("record", record)
    return queue


def _send(queue: Queue, count: int) -> None:
    from sqsx import TaskMessage

    results = queue.send_tasks(TaskMessage("record", {"n": n}) for n in range(count))
    assert all(result.ok for result in results)


def test_max_messages_total_receives_exactly_that_many_and_stops(
    endpoint_url: str, queue_url: str, sqs_client: Any
) -> None:
    # Given 25 tasks and a worker allowed 13, receiving up to 10 at a time on 4 threads
    done: list[int] = []
    queue = _queue(endpoint_url, queue_url, done)
    _send(queue, 25)
    calls = CallCounter(queue.sqs_client)

    # When it runs (in this thread: it must return by itself)
    options = ConsumeOptions(
        max_messages=10,
        max_threads=4,
        polling_wait_seconds=1,
        wait_seconds=0,
        max_messages_total=13,
        visibility_timeout=30,
    )
    queue.run(options)

    # Then it processed 13 distinct tasks, received no more (nothing released) and left the
    # other 12 visible on the queue, none in flight
    stats = queue.stats()
    assert len(done) == 13 and len(set(done)) == 13
    assert stats.received == 13 and stats.released == 0
    assert queue_counts(sqs_client, queue_url) == (12, 0, 0)
    assert calls.counts["ReceiveMessage"] >= 2  # 13 needs at least two receives of <= 10


def test_exit_when_idle_returns_after_the_queue_stayed_empty(
    endpoint_url: str, queue_url: str, sqs_client: Any
) -> None:
    # Given 5 tasks and a worker that exits after 1.5 s without work
    done: list[int] = []
    queue = _queue(endpoint_url, queue_url, done)
    _send(queue, 5)
    options = ConsumeOptions(
        max_messages=10, max_threads=2, polling_wait_seconds=1, wait_seconds=0,
        exit_when_idle_seconds=1.5,
    )  # fmt: skip

    # When it runs
    started = time.monotonic()
    queue.run(options)
    took = time.monotonic() - started

    # Then it did the work, then stopped by itself once idle, with the queue empty
    assert sorted(done) == list(range(5))
    assert queue_counts(sqs_client, queue_url) == (0, 0, 0)
    assert took >= 1.5
    assert took < 15  # not the test's timeout: it stopped by itself


# -- the command line --------------------------------------------------------------------------


def test_the_worker_command_exits_0_after_max_messages_total(
    endpoint_url: str, queue_url: str, sqs_client: Any, tmp_path: Path
) -> None:
    # Given 8 tasks
    record = tmp_path / "record.txt"
    record.touch()
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    for n in range(8):
        queue.add_task("record", n=n)

    # When `sqsx worker --max-messages-total 5` runs
    result = run_sqsx(
        "worker", "cli_app:queue", "--app-dir", str(TESTS), "--queue-url", queue_url,
        "--endpoint-url", endpoint_url, "--polling-wait", "1", "--max-messages", "3",
        "--max-messages-total", "5",
        env={"SQSX_TEST_RECORD": str(record)},
    )  # fmt: skip

    # Then it ran 5 of them, exited 0 and said why
    assert result.returncode == 0, result.stderr
    assert len(set(record.read_text().split())) == 5
    assert "exiting after 5 messages" in result.stderr
    assert "done with its 5 messages (--max-messages-total)" in result.stderr
    assert queue_counts(sqs_client, queue_url) == (3, 0, 0)


def test_the_worker_command_exits_0_when_idle(
    endpoint_url: str, queue_url: str, tmp_path: Path
) -> None:
    # Given an empty queue, when `sqsx worker --exit-when-idle 1` runs
    result = run_sqsx(
        "worker", "cli_app:queue", "--app-dir", str(TESTS), "--queue-url", queue_url,
        "--endpoint-url", endpoint_url, "--polling-wait", "1", "--exit-when-idle", "1",
        env={"SQSX_TEST_RECORD": str(tmp_path / "record.txt")},
    )  # fmt: skip

    # Then it exits 0 by itself and says why
    assert result.returncode == 0, result.stderr
    assert "idle for 1 s (--exit-when-idle)" in result.stderr


@pytest.mark.parametrize(
    "option",
    [
        pytest.param(["--max-messages-total", "0"], id="zero-total"),
        pytest.param(["--exit-when-idle", "0"], id="zero-idle"),
    ],
)
def test_bad_job_limits_are_usage_errors(option: list[str]) -> None:
    result = run_sqsx("worker", "cli_app:queue", "--app-dir", str(TESTS), *option)
    assert result.returncode == 2
    assert "must be at least" in result.stderr
