"""``sqsx worker A B``: one worker process consuming several queues."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

import pytest
from conftest import queue_counts, wait_until
from test_cli import TESTS, Worker, run_sqsx

from sqsx import Queue, TaskMessage

pytestmark = pytest.mark.timeout(120)


def _env(orders: str, emails: str, record: Path) -> dict[str, str]:
    return {
        "SQSX_TEST_ORDERS_URL": orders,
        "SQSX_TEST_EMAILS_URL": emails,
        "SQSX_TEST_RECORD": str(record),
    }


def _send(sqs_client: Any, url: str, count: int, **kwargs: Any) -> None:
    Queue(url=url, sqs_client=sqs_client).send_tasks(
        [TaskMessage("record", {"n": n, **kwargs}) for n in range(count)]
    )


@pytest.mark.parametrize(
    "processes", [pytest.param(1, id="one-process"), pytest.param(2, id="two")]
)
def test_a_worker_drains_two_queues_and_sums_up_each(
    sqs_client: Any, make_queue: Any, endpoint_url: str, tmp_path: Path, processes: int
) -> None:
    # Given 20 tasks on one queue and 5 on another
    orders, emails = make_queue("orders"), make_queue("emails")
    _send(sqs_client, orders, 20)
    _send(sqs_client, emails, 5)
    record = tmp_path / "record.txt"

    # When one draining worker consumes both
    result = run_sqsx(
        "worker", "group_app:orders", "group_app:emails", "--app-dir", str(TESTS),
        "--endpoint-url", endpoint_url, "--drain", "--threads", "3", "--polling-wait", "1",
        "--weights", "2,1", "--processes", str(processes), "--progress-interval", "0",
        env=_env(orders, emails, record),
    )  # fmt: skip

    # Then every task ran through its own queue's handler, both queues are empty, it exited
    # 0, and the summary gives the total and each queue's line (in a fleet: summed over
    # its processes)
    assert result.returncode == 0, result.stderr
    # (sets, and at least: moto may deliver a message twice to concurrent receivers)
    lines = set(record.read_text().splitlines())
    assert lines == {f"orders {n}" for n in range(20)} | {f"emails {n}" for n in range(5)}
    assert queue_counts(sqs_client, orders) == (0, 0, 0)
    assert queue_counts(sqs_client, emails) == (0, 0, 0)
    total = re.search(r"drained after [\d.]+ s: processed (\d+) ", result.stderr)
    assert total is not None and int(total.group(1)) >= 25, result.stderr
    if processes == 1:
        assert "2 queues, 3 threads shared" in result.stderr
        assert "(weight 2): 20 messages on the queue" in result.stderr
    for url, count in ((orders, 20), (emails, 5)):
        name = url.rsplit("/", 1)[1]
        line = re.search(rf"  {re.escape(name)}: processed (\d+), received (\d+)", result.stderr)
        assert line is not None, result.stderr
        assert int(line.group(1)) >= count and int(line.group(2)) >= count
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(("--queue-url", "http://127.0.0.1:9/0/q"), "names one queue", id="url"),
        pytest.param(("--weights", "1,2,3"), "one weight per queue (2)", id="weights"),
        pytest.param(("--weights", "1,0"), "must be from 1 to 1000", id="weight-bound"),
    ],
)
def test_bad_many_queue_invocations_get_one_line_and_exit_2(
    tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    env = _env("http://127.0.0.1:9/0/a", "http://127.0.0.1:9/0/b", tmp_path / "r")
    result = run_sqsx(
        "worker", "group_app:orders", "group_app:emails", "--app-dir", str(TESTS), *extra,
        env=env,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_same_queue_twice_is_a_usage_error(tmp_path: Path) -> None:
    env = _env("http://127.0.0.1:9/0/a", "http://127.0.0.1:9/0/a", tmp_path / "r")
    result = run_sqsx(
        "worker", "group_app:orders", "group_app:emails", "--app-dir", str(TESTS), env=env
    )
    assert result.returncode == 2
    assert "the same queue twice" in result.stderr


def test_sigterm_stops_every_queue_gracefully_and_gives_back_what_did_not_start(
    sqs_client: Any, make_queue: Any, endpoint_url: str, tmp_path: Path
) -> None:
    # Given 60 tasks of 20 ms on each of two queues whose visibility timeout is 60 s
    orders, emails = (
        make_queue("orders", VisibilityTimeout=60),
        make_queue("e", VisibilityTimeout=60),
    )
    _send(sqs_client, orders, 60, seconds=0.02)
    _send(sqs_client, emails, 60, seconds=0.02)
    record = tmp_path / "record.txt"
    record.touch()
    worker = Worker(
        ["group_app:orders", "group_app:emails", "--app-dir", str(TESTS), "--endpoint-url",
         endpoint_url, "--polling-wait", "1", "--threads", "2"],
        _env(orders, emails, record),
        tmp_path / "worker.log",
    )  # fmt: skip

    # When SIGTERM arrives once both queues' tasks run
    def started_both() -> bool:
        names = {line.split()[0] for line in record.read_text().splitlines()}
        return names == {"orders", "emails"}

    assert wait_until(started_both, timeout=30), worker.stderr
    worker.process.send_signal(signal.SIGTERM)
    code = worker.finish()

    # Then it exited 0 after a graceful stop, and each queue's tasks not done are visible
    # again at once (not after 60 s): nothing lost, nothing left hidden
    assert code == 0, worker.stderr
    assert "stopped gracefully (SIGTERM)" in worker.stderr
    done = record.read_text().splitlines()
    for name, url in (("orders", orders), ("emails", emails)):
        finished = sum(1 for line in done if line.startswith(f"{name} "))
        assert finished < 60
        assert wait_until(
            lambda u=url, f=finished: queue_counts(sqs_client, u) == (60 - f, 0, 0), 5
        )


def test_metrics_of_several_queues_come_from_one_listener_by_queue_label(
    sqs_client: Any, make_queue: Any, endpoint_url: str, tmp_path: Path
) -> None:
    from test_cli_observability import free_port, scrape

    # Given 6 tasks on one queue and 3 on another
    orders, emails = make_queue("orders"), make_queue("emails")
    _send(sqs_client, orders, 6)
    _send(sqs_client, emails, 3)
    port = free_port()
    names = {url: url.rsplit("/", 1)[1] for url in (orders, emails)}

    def succeeded(url: str) -> float:
        key = ("sqsx_messages_total", frozenset(
            {("queue", names[url]), ("task", "record"), ("verdict", "succeeded")}
        ))  # fmt: skip
        return scrape(port).get(key, 0)

    # When one worker consumes both with --metrics-port
    worker = Worker(
        ["group_app:orders", "group_app:emails", "--app-dir", str(TESTS), "--endpoint-url",
         endpoint_url, "--polling-wait", "1", "--metrics-port", str(port)],
        _env(orders, emails, tmp_path / "record.txt"),
        tmp_path / "worker.log",
    )  # fmt: skip
    try:
        counted = wait_until(lambda: succeeded(orders) == 6 and succeeded(emails) == 3, 60)
        samples = scrape(port)
    finally:
        worker.process.send_signal(signal.SIGTERM)
        code = worker.finish()

    # Then one endpoint counted each queue under its own label, and sampled both depths
    assert counted, worker.stderr[-3000:]
    assert code == 0
    for name in names.values():
        assert ("sqsx_queue_messages", frozenset({("queue", name), ("state", "visible")})) in (
            samples
        )


def test_a_fleet_child_gets_every_queue_and_the_weights() -> None:
    from sqsx.cli import build_parser
    from sqsx.cli.supervisor import child_argv

    args = build_parser().parse_args(
        ["worker", "app:orders", "app:emails", "--processes", "2", "--weights", "3,1"]
    )
    argv = child_argv(args.worker_parser, args)
    child = build_parser().parse_args(argv[3:])
    assert child.target == ["app:orders", "app:emails"]
    assert child.weights == (3, 1)
    assert child.processes == 1


def test_summed_counters_keep_timed_out_handlers() -> None:
    from sqsx.stats import StatsSnapshot, sum_snapshots

    one = StatsSnapshot(
        received=3, succeeded=1, retried=0, no_retry=0, unprocessable=0, released=0,
        in_flight=0, elapsed=1.0, latency_p50=0.0, latency_p95=0.0, latency_max=0.0,
        timed_out=2,
    )  # fmt: skip
    total = sum_snapshots([one, one], elapsed=2.0)
    assert total.timed_out == 4
    assert total.processed == 6
