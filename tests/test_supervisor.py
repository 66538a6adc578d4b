"""``sqsx worker --processes N``: the children's command line, shares of
``--max-messages-total``, summed counters, and a fleet on the local SQS server. (Crashes and
signals are in tests/fault/test_fault_processes.py.)"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from conftest import queue_counts
from test_cli import TESTS, run_sqsx

from sqsx import Queue
from sqsx.cli import build_parser, main
from sqsx.cli.supervisor import Fleet, child_argv, sum_snapshots
from sqsx.stats import StatsSnapshot


def _parse(*argv: str) -> Any:
    return build_parser().parse_args(["worker", *argv])


def test_a_child_runs_the_same_worker_as_one_process_without_the_fleet_options() -> None:
    args = _parse(
        "app:queue", "--processes", "3", "--threads", "4", "--drain", "--stop-timeout", "7.5",
        "--max-messages-total", "30", "--queue-url", "http://127.0.0.1:1/000000000000/q",
    )  # fmt: skip
    argv = child_argv(args.worker_parser, args)
    assert argv[1:4] == ["-m", "sqsx", "worker"]
    child = _parse(*argv[4:])
    assert child.processes == 1
    assert child.max_messages_total is None  # the fleet adds each child's share
    for option in ("target", "threads", "drain", "stop_timeout", "queue_url", "polling_wait"):
        assert getattr(child, option) == getattr(args, option), option


def test_max_messages_total_is_shared_out_between_the_processes() -> None:
    fleet = Fleet(["sqsx"], 3, 10)
    assert [child.share for child in fleet.children] == [4, 3, 3]
    assert [child.share for child in Fleet(["sqsx"], 2, None).children] == [None, None]


def test_counters_are_summed_and_the_slowest_p95_is_kept() -> None:
    base = StatsSnapshot(
        received=10, succeeded=8, retried=1, no_retry=1, unprocessable=0, released=2,
        in_flight=3, elapsed=5.0, latency_p50=0.010, latency_p95=0.020, latency_max=0.050,
    )  # fmt: skip
    slow = dataclasses.replace(base, succeeded=18, latency_p50=0.040, latency_p95=0.090)
    total = sum_snapshots([base, slow], elapsed=9.0)
    assert (total.received, total.succeeded, total.released, total.in_flight) == (20, 26, 4, 6)
    assert total.processed == base.processed + slow.processed
    assert total.latency_p95 == 0.090 and total.latency_max == 0.050
    # p50 weighted by processed messages: (10 * 0.010 + 20 * 0.040) / 30
    assert abs(total.latency_p50 - 0.030) < 1e-9
    assert total.elapsed == 9.0
    assert sum_snapshots([], elapsed=1.0).processed == 0


def test_a_total_smaller_than_the_processes_is_a_usage_error(capsys: Any) -> None:
    code = main(["worker", "app:queue", "--processes", "4", "--max-messages-total", "3"])
    assert code == 2
    assert "--max-messages-total (3) must be at least --processes (4)" in capsys.readouterr().err


def test_a_fleet_with_a_message_budget_processes_exactly_it_and_sums_the_children(
    endpoint_url: str, queue_url: str, sqs_client: Any, tmp_path: Path
) -> None:
    # Given 10 tasks
    record = tmp_path / "record.txt"
    record.touch()
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    for n in range(10):
        queue.add_task("record", n=n)

    # When two processes share a budget of 7 messages
    result = run_sqsx(
        "worker", "cli_app:queue", "--app-dir", str(TESTS), "--queue-url", queue_url,
        "--endpoint-url", endpoint_url, "--polling-wait", "1", "--processes", "2",
        "--threads", "2", "--max-messages-total", "7",
        env={"SQSX_TEST_RECORD": str(record)},
    )  # fmt: skip

    # Then 7 tasks ran (4 in one process, 3 in the other), 3 stay queued, the one summary
    # counts both processes, and the exit code is 0
    assert result.returncode == 0, result.stderr
    assert len(set(record.read_text().split())) == 7
    assert queue_counts(sqs_client, queue_url) == (3, 0, 0)
    assert "2 processes x 2 threads" in result.stderr
    assert "processed 7 " in result.stderr
    assert result.stderr.count("sqsx: done with its 7 messages") == 1
    assert result.stderr.count("started worker process") == 2
