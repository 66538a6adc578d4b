"""``sqsx worker --metrics-port`` and ``--log-format json``, in a subprocess on moto."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import ScriptRun, wait_until
from prometheus_client.parser import text_string_to_metric_families

from sqsx import Queue

TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return {}  # not listening yet
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.timeout(120)
def test_a_worker_serves_metrics_and_logs_json_lines(
    sqs_client: Any, queue_url: str, endpoint_url: str, tmp_path: Path
) -> None:
    # Given 20 tasks that succeed and one that no handler takes
    record = tmp_path / "record.txt"
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    for n in range(20):
        queue.add_task("record", n=n)
    unknown = queue.add_task("nobody")["MessageId"]
    port = free_port()
    name = queue_url.rsplit("/", 1)[-1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQSX_", "AWS_"))}
    env["SQSX_TEST_RECORD"] = str(record)

    # When a worker runs with --metrics-port and --log-format json, until its metrics say
    # that every task succeeded and the unknown one was seen
    worker = ScriptRun(
        [sys.executable, "-m", "sqsx", "worker", "cli_app:queue", "--app-dir", str(TESTS),
         "--queue-url", queue_url, "--endpoint-url", endpoint_url, "--polling-wait", "1",
         "--threads", "4", "--log-format", "json", "--metrics-port", str(port),
         "--progress-interval", "0.5"],
        cwd=str(TESTS.parent), env=env,
    )  # fmt: skip
    succeeded = _key("sqsx_messages_total", queue=name, task="record", verdict="succeeded")
    poisoned = _key("sqsx_messages_total", queue=name, task="-", verdict="unprocessable")
    try:
        deleted = _key("sqsx_sqs_calls_total", operation="DeleteMessageBatch")
        seen = wait_until(  # (the deletes go out up to ack_delay after the handlers)
            lambda: (
                (s := scrape(port)).get(succeeded, 0) >= 20
                and s.get(poisoned, 0) >= 1
                and s.get(deleted, 0) >= 1
            ),
            timeout=60,
            interval=0.2,
        )
        samples = scrape(port)
        # (a fast server drains it all within one progress interval: wait for one line)
        wait_until(lambda: '"sqsx.cli.progress"' in worker.errors, timeout=5)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.finish(30)

    # Then the endpoint counted them, with SQS calls by operation and the sampled depth
    assert seen, worker.errors[-3000:]
    assert code == 0, worker.errors[-3000:]
    assert samples[succeeded] >= 20
    calls = {dict(labels)["operation"] for (n, labels) in samples if n == "sqsx_sqs_calls_total"}
    assert {"ReceiveMessage", "DeleteMessageBatch", "GetQueueAttributes"} <= calls
    assert ("sqsx_queue_messages", frozenset({("queue", name), ("state", "visible")})) in samples
    assert (
        samples[("sqsx_worker_info", frozenset({("version", _version()), ("runtime", "worker")}))]
        == 1
    )

    # And every line on stderr is one JSON object; per-message lines carry the keys
    lines = [json.loads(line) for line in worker.errors.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    about_unknown = [line for line in lines if line.get("message_id") == unknown]
    assert about_unknown, lines[:5]
    assert {(line["task"], line["queue_url"]) for line in about_unknown} == {("nobody", queue_url)}
    assert any(
        "serving Prometheus metrics on http://127.0.0.1" in line["message"] for line in lines
    )
    assert any("sqsx worker:" in line["message"] for line in lines)  # the banner, as JSON
    assert any(line["logger"] == "sqsx.cli.progress" for line in lines)
    assert "Traceback" not in worker.errors


def _key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def _version() -> str:
    from sqsx import __version__

    return __version__


def test_a_handler_s_own_lines_carry_the_message_keys() -> None:
    # Given a queue with LogScope and a JSON handler on the "app" logger
    import io
    import logging

    from sqsx.jsonlogs import JsonFormatter, LogScope
    from sqsx.message import Message

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    app = logging.getLogger("app.tasks")
    app.addHandler(handler)
    app.setLevel(logging.INFO)
    url = "http://127.0.0.1:9/000000000000/jobs"
    queue = Queue(url=url, sqs_client=_no_client(), hooks=[LogScope()])
    queue.add_task_handler("job", lambda context: app.info("working on it"))
    raw = {
        "MessageId": "m-1",
        "ReceiptHandle": "r",
        "Body": "eyJrd2FyZ3MiOiB7fX0=",  # base64 of {"kwargs": {}}
        "MessageAttributes": {"TaskName": {"DataType": "String", "StringValue": "job"}},
    }
    try:
        # When the handler logs, and then the same thread logs outside any handler
        queue.dispatcher.process(Message.from_boto3(raw))
        app.info("between messages")
    finally:
        app.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())

    # Then the handler's line has the message's keys, the later one none
    assert (inside["message_id"], inside["task"], inside["queue_url"]) == ("m-1", "job", url)
    assert inside["message"] == "working on it" and inside["logger"] == "app.tasks"
    assert "message_id" not in outside
    assert inside["time"].endswith("Z") and inside["level"] == "INFO"


def _no_client() -> Any:
    import boto3

    return boto3.client("sqs", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip


def _fleet(
    queue_url: str, endpoint_url: str, port: int, record: Path, *extra: str,
    app: str = "cli_app:queue",
) -> ScriptRun:  # fmt: skip
    """``sqsx worker APP --processes 2 --metrics-port PORT`` on ``queue_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQSX_", "AWS_"))}
    env["SQSX_TEST_RECORD"] = str(record)
    return ScriptRun(
        [sys.executable, "-m", "sqsx", "worker", app, "--app-dir", str(TESTS),
         "--queue-url", queue_url, "--endpoint-url", endpoint_url, "--polling-wait", "1",
         "--processes", "2", "--metrics-port", str(port), "--progress-interval", "0",
         "--stop-timeout", "1", *extra],
        cwd=str(TESTS.parent), env=env,
    )  # fmt: skip


def _total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float:  # fmt: skip
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= got)


def _both_children_started(port: int) -> bool:
    # each child reads the depth twice as it starts (its banner, its sampler's first read)
    return _total(scrape(port), "sqsx_sqs_calls_total", operation="GetQueueAttributes") >= 4


@pytest.mark.timeout(120)
def test_a_fleet_serves_its_children_s_metrics_summed_on_one_port(
    sqs_client: Any, queue_url: str, endpoint_url: str, tmp_path: Path
) -> None:
    # Given 5 delayed messages that stay on the queue, and two worker processes serving
    # one /metrics, both consuming
    for n in range(5):
        sqs_client.send_message(QueueUrl=queue_url, MessageBody=f"later {n}", DelaySeconds=900)
    record = tmp_path / "record.txt"
    port = free_port()
    name = queue_url.rsplit("/", 1)[-1]
    fleet = _fleet(queue_url, endpoint_url, port, record, "--threads", "2", "--max-messages", "2")
    try:
        started = wait_until(lambda: _both_children_started(port), timeout=60, interval=0.2)
        assert started, fleet.errors[-3000:]
        queue = Queue(url=queue_url, sqs_client=sqs_client)

        # When 40 tasks are sent and drained by both
        for n in range(40):
            queue.add_task("where", n=n, seconds=0.1)
        succeeded = _key("sqsx_messages_total", queue=name, task="where", verdict="succeeded")
        histogram = _key("sqsx_handler_duration_seconds_count", queue=name, task="where")
        samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        runs: list[str] = []

        def all_counted() -> bool:  # (moto may deliver a message twice: runs, not messages)
            samples.clear()
            samples.update(scrape(port))
            runs[:] = record.read_text().splitlines() if record.exists() else []
            # (a scrape may fall between a message's count and its duration: both settle)
            return (
                samples.get(succeeded, 0) >= 40
                and samples[succeeded] == len(runs)
                and samples.get(histogram) == samples[succeeded]
            )

        done = wait_until(all_counted, timeout=60, interval=0.2)
    finally:
        fleet.send_signal(signal.SIGTERM)
        code = fleet.finish(30)

    # Then the one endpoint counts what both processes ran
    assert done, (samples.get(succeeded), len(runs), fleet.errors[-3000:])
    assert code == 0, fleet.errors[-3000:]
    assert len({line.split()[1] for line in runs}) == 2  # both processes ran tasks
    assert samples[histogram] == samples[succeeded]
    # And the sampled depth is the queue's, not once per process: 5 delayed, not 10
    assert samples[_key("sqsx_queue_messages", queue=name, state="delayed")] == 5
    assert all("pid" not in dict(labels) for (_, labels) in samples)
    info = _key("sqsx_worker_info", version=_version(), runtime="worker")
    assert samples[info] == 1
    assert "Traceback" not in fleet.errors


@pytest.mark.only_on(
    "moto", reason="what is under test is the supervisor's merging, whatever the server"
)
@pytest.mark.timeout(120)
def test_a_dead_child_s_counters_stay_and_its_gauges_go(
    sqs_client: Any, queue_url: str, endpoint_url: str, tmp_path: Path
) -> None:
    # Given two worker processes of one thread each, each running a handler that blocks
    record = tmp_path / "record.txt"
    port = free_port()
    name = queue_url.rsplit("/", 1)[-1]
    fleet = _fleet(
        queue_url, endpoint_url, port, record, "--threads", "1", "--max-messages", "1",
        app="cli_app:threads_only",
    )  # fmt: skip
    in_progress = _key("sqsx_messages_in_progress", queue=name)
    try:
        assert wait_until(lambda: _both_children_started(port), timeout=60, interval=0.2)
        queue = Queue(url=queue_url, sqs_client=sqs_client)
        # a child holds at most 3 (1 thread + (1 receiver + 1) x 1 per receive): with 6,
        # each runs one, and none is left for the child that replaces the killed one
        for _ in range(6):
            queue.add_task("block")
        busy = wait_until(lambda: scrape(port).get(in_progress) == 2, timeout=30, interval=0.2)
        assert busy, fleet.errors[-3000:]
        before = scrape(port)
        started = [line for line in fleet.errors.splitlines() if "started worker process" in line]
        pids = [int(line.rsplit("pid=", 1)[1].split()[0]) for line in started]

        # When one child is killed
        os.kill(pids[0], signal.SIGKILL)
        after: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

        def one_left() -> bool:
            after.update(scrape(port))
            return after.get(in_progress) == 1

        left = wait_until(one_left, timeout=30, interval=0.2)
    finally:
        fleet.send_signal(signal.SIGTERM)
        fleet.send_signal(signal.SIGTERM)
        fleet.finish(30)

    # Then its handler no longer counts as running, and what it counted before stays
    assert left, (after.get(in_progress), fleet.errors[-3000:])
    calls = "sqsx_sqs_calls_total"
    for operation in ("GetQueueAttributes", "ReceiveMessage"):
        assert _total(after, calls, operation=operation) >= _total(
            before, calls, operation=operation
        )
    assert "restarting it" in fleet.errors


def test_the_fleet_s_listener_and_directory_are_its_own_and_go_with_it() -> None:
    # Given the fleet metrics of a supervisor whose children have not started
    import argparse
    import stat

    from sqsx.cli.fleetmetrics import MULTIPROC_ENV, fleet_metrics
    from sqsx.cli.supervisor import Fleet

    args = argparse.Namespace(metrics_port=0, metrics_host="127.0.0.1", processes=2)
    fleet = Fleet(["unused"], 2, None)
    before = os.environ.get(MULTIPROC_ENV)

    # When it serves, then it listens on 127.0.0.1, and its children would get a directory
    # only its user can read
    with fleet_metrics(args, fleet) as server:
        path = Path(os.environ[MULTIPROC_ENV])
        assert server.server_address[0] == "127.0.0.1"
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        samples = scrape(server.server_port)
        assert samples[_key("sqsx_worker_info", version=_version(), runtime="worker")] == 1

    # And once it ends, the directory is gone and the environment is as it was
    assert not path.exists()
    assert os.environ.get(MULTIPROC_ENV) == before


def test_only_the_live_gauge_files_of_processes_not_running_are_dead(tmp_path: Path) -> None:
    from sqsx.cli.fleetmetrics import dead_pids

    for name in ("gauge_livesum_101.db", "gauge_liveall_102.db", "gauge_livesum_103.db",
                 "counter_104.db", "gauge_mostrecent_105.db", "histogram_101.db"):  # fmt: skip
        (tmp_path / name).touch()
    assert dead_pids(str(tmp_path), running={103}) == {101, 102}
