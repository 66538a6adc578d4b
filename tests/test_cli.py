"""The ``sqsx`` command as a subprocess against the local SQS server: a draining worker,
signals in the middle of a drain, ``sqsx local``, ``send``/``stats``, bad invocations."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import pytest
from conftest import ScriptRun, make_client, make_s3_client, queue_counts, wait_until

from sqsx import Queue
from sqsx.codec import decode_task

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQSX_", "AWS_"))}
    return {**env, "PYTHONUNBUFFERED": "1", **(extra or {})}


def run_sqsx(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m sqsx ARGS`` to completion (at most 90 s)."""
    return subprocess.run(
        [sys.executable, "-m", "sqsx", *args],
        cwd=ROOT,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=90,
    )


class Worker:
    """``sqsx worker`` running in the background; stderr goes to a file (no pipe to fill)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._stderr: TextIO = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sqsx", "worker", *args],
            cwd=ROOT,
            env=_env(env),
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def finish(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(5)
            self._stderr.close()

    @property
    def stderr(self) -> str:
        return self.log.read_text()


@pytest.fixture
def record(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "record.txt"
    path.touch()
    yield path


def _lines(path: Path) -> list[str]:
    return path.read_text().split()


def _send_tasks(sqs_client: Any, url: str, count: int, **kwargs: Any) -> None:
    queue = Queue(url=url, sqs_client=sqs_client)
    for n in range(count):
        queue.add_task("record", n=n, **kwargs)


def _worker_args(url: str, endpoint: str, *extra: str) -> list[str]:
    return [
        "cli_app:queue", "--app-dir", str(TESTS), "--queue-url", url, "--endpoint-url", endpoint,
        "--polling-wait", "1", *extra,
    ]  # fmt: skip


# -- worker ---------------------------------------------------------------------------------


def test_drain_processes_every_task_and_exits_0(
    sqs_client: Any, queue_url: str, endpoint_url: str, record: Path
) -> None:
    # Given 30 tasks, and the queue and endpoint given by environment variables
    _send_tasks(sqs_client, queue_url, 30)
    env = {
        "SQSX_QUEUE_URL": queue_url,
        "SQSX_ENDPOINT_URL": endpoint_url,
        "SQSX_TEST_RECORD": str(record),
    }

    # When a draining worker runs
    result = run_sqsx(
        "worker", "cli_app:make_queue", "--app-dir", str(TESTS), "--drain",
        "--threads", "4", "--polling-wait", "1", "--progress-interval", "0.2",
        env=env,
    )  # fmt: skip

    # Then it ran every task, left the queue empty, exited 0 and said so
    assert result.returncode == 0, result.stderr
    assert set(map(int, _lines(record))) == set(range(30))
    assert queue_counts(sqs_client, queue_url) == (0, 0, 0)
    assert "sqsx: drained after" in result.stderr
    assert "msg/s | processed" in result.stderr  # the progress lines
    assert "handler latency p50" in result.stderr
    assert "Traceback" not in result.stderr


def test_max_async_runs_coroutines_beyond_the_threads(
    sqs_client: Any, make_queue: Callable[..., str], endpoint_url: str, record: Path
) -> None:
    # Given 30 async tasks that each await 1 s
    url = make_queue(VisibilityTimeout=60)
    queue = Queue(url=url, sqs_client=sqs_client)
    for n in range(30):
        queue.add_task("nap", n=n, seconds=1.0)

    # When a draining worker with one thread and --max-async 10 runs them
    args = _worker_args(url, endpoint_url, "--drain", "--threads", "1", "--max-async", "10")
    result = run_sqsx("worker", *args, env={"SQSX_TEST_RECORD": str(record)})

    # Then all ran, up to ten at once (never more) on that one thread
    assert result.returncode == 0, result.stderr
    running = peak = 0
    for line in _lines(record):
        running += 1 if line.startswith("+") else -1
        peak = max(peak, running)
    assert 5 <= peak <= 10
    assert len(_lines(record)) == 60
    assert queue_counts(sqs_client, url) == (0, 0, 0)


def test_sigterm_mid_drain_loses_nothing(
    sqs_client: Any, make_queue: Callable[..., str], endpoint_url: str, record: Path, tmp_path: Path
) -> None:
    # Given 150 tasks of 20 ms, on a queue whose visibility timeout is 60 s
    url = make_queue(VisibilityTimeout=60)
    _send_tasks(sqs_client, url, 150, seconds=0.02)
    worker = Worker(
        _worker_args(url, endpoint_url, "--drain", "--threads", "2"),
        {"SQSX_TEST_RECORD": str(record)},
        tmp_path / "worker.log",
    )

    # When SIGTERM arrives once some tasks are done
    assert wait_until(lambda: len(_lines(record)) >= 10, timeout=30), worker.stderr
    worker.process.send_signal(signal.SIGTERM)
    code = worker.finish()

    # Then it stopped gracefully with exit code 0...
    assert code == 0, worker.stderr
    assert "stopped gracefully (SIGTERM)" in worker.stderr
    done = set(map(int, _lines(record)))
    assert 10 <= len(done) < 150
    # ...and every task not done is visible again at once, not after the 60 s timeout
    assert wait_until(lambda: queue_counts(sqs_client, url) == (150 - len(done), 0, 0), timeout=5)
    left: set[int] = set()
    for _ in range(40):
        messages = sqs_client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        for message in messages:
            left.add(decode_task(message["Body"], message["MessageAttributes"]).kwargs["n"])
        if len(left) == 150 - len(done):
            break
    assert left | done == set(range(150))
    assert not left & done


def test_a_second_signal_stops_at_once_with_its_exit_code(
    sqs_client: Any, make_queue: Callable[..., str], endpoint_url: str, record: Path, tmp_path: Path
) -> None:
    # Given a handler that runs for a minute, on a queue whose visibility timeout is 2 s
    url = make_queue(VisibilityTimeout=2)
    Queue(url=url, sqs_client=sqs_client).add_task("block")
    worker = Worker(
        _worker_args(url, endpoint_url, "--threads", "1"),
        {"SQSX_TEST_RECORD": str(record)},
        tmp_path / "worker.log",
    )
    assert wait_until(lambda: _lines(record) == ["started"], timeout=30), worker.stderr

    # When SIGTERM comes twice
    worker.process.send_signal(signal.SIGTERM)
    assert wait_until(lambda: "graceful shutdown" in worker.stderr, timeout=10), worker.stderr
    worker.process.send_signal(signal.SIGTERM)
    code = worker.finish(timeout=20)

    # Then it exits at once with 128 + SIGTERM, saying the handler was abandoned...
    assert code == 128 + signal.SIGTERM, worker.stderr
    assert "stopped at once (SIGTERM twice) after " in worker.stderr
    assert "1 running handler(s) abandoned: their messages reappear once" in worker.stderr
    # (the first signal said that a second one abandons running handlers)
    assert "stop again (a second Ctrl-C or SIGTERM) to abandon them" in worker.stderr
    # ...and the message comes back after the visibility timeout
    assert wait_until(lambda: queue_counts(sqs_client, url) == (1, 0, 0), timeout=10)


# -- local ----------------------------------------------------------------------------------


def test_local_serves_queues_until_sigint() -> None:
    # Given `sqsx local` on a free port with a queue and its dead-letter queue
    local = ScriptRun(
        [sys.executable, "-m", "sqsx", "local", "--port", "0", "--queue", "jobs", "--with-dlq",
         "--max-receives", "4"],
        cwd=str(ROOT),
        env=_env(),
    )  # fmt: skip
    try:
        endpoint = local.wait_for("export SQSX_ENDPOINT_URL=").strip().split("=", 1)[1]
        local.wait_for("Press Ctrl-C to stop.")

        # Then the queues exist, with the redrive policy, at the URLs it printed
        client = make_client(endpoint)
        url = client.get_queue_url(QueueName="jobs")["QueueUrl"]
        assert f"jobs: {url}" in local.output
        assert "jobs-dlq: " in local.output
        policy = json.loads(
            client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])[
                "Attributes"
            ]["RedrivePolicy"]
        )
        assert policy["deadLetterTargetArn"].endswith(":jobs-dlq")
        assert int(policy["maxReceiveCount"]) == 4
    finally:
        # When it gets SIGINT (Ctrl-C)
        local.send_signal(signal.SIGINT)
        code = local.finish()

    # Then it exits 0 and the port is free again
    assert code == 0, local.errors
    assert "sqsx local: stopped" in local.errors
    port = int(endpoint.rsplit(":", 1)[1])
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


def test_local_serves_s3_buckets_on_the_same_port() -> None:
    # Given `sqsx local` asked for a bucket
    local = ScriptRun(
        [sys.executable, "-m", "sqsx", "local", "--port", "0", "--bucket", "blobs"],
        cwd=str(ROOT),
        env=_env(),
    )
    try:
        endpoint = local.wait_for("export SQSX_ENDPOINT_URL=").strip().split("=", 1)[1]
        # Then it prints the S3 endpoint and the bucket, which takes and returns objects
        assert f"S3 on {endpoint}" in local.output
        assert f"bucket blobs: {endpoint}/blobs" in local.output
        s3 = make_s3_client(endpoint)
        s3.put_object(Bucket="blobs", Key="k", Body=b"payload")
        assert s3.get_object(Bucket="blobs", Key="k")["Body"].read() == b"payload"
    finally:
        local.send_signal(signal.SIGINT)
        code = local.finish()
    assert code == 0, local.errors


def test_local_without_moto_says_how_to_install_it() -> None:
    # Given an interpreter where moto cannot be imported
    code = "import sys; sys.modules['moto'] = None; from sqsx.cli import main; sys.exit(main())"
    result = subprocess.run(
        [sys.executable, "-c", code, "local", "--port", "0"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "pip install 'sqsx[local]'" in result.stderr
    assert "Traceback" not in result.stderr


# -- send and stats ---------------------------------------------------------------------------


def test_send_batches_tasks_and_stats_counts_them(
    sqs_client: Any, make_queue: Callable[..., str], endpoint_url: str
) -> None:
    # Given a queue with a dead-letter queue holding two messages
    dlq = make_queue("dlq")
    arn = sqs_client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    policy = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": "3"}
    url = make_queue(RedrivePolicy=json.dumps(policy))
    for body in ("a", "b"):
        sqs_client.send_message(QueueUrl=dlq, MessageBody=body)

    # When 25 tasks are sent
    sent = run_sqsx(
        "send", "cli_app:queue", "record", "--app-dir", str(TESTS), "--queue-url", url,
        "--endpoint-url", endpoint_url, "--kwargs", '{"n": 7}', "--count", "25",
    )  # fmt: skip

    # Then they went out in three SendMessageBatch calls, in the task wire format
    assert sent.returncode == 0, sent.stderr
    assert f"sent 25 x record to {url}" in sent.stdout
    assert queue_counts(sqs_client, url) == (25, 0, 0)
    message = sqs_client.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    task = decode_task(message[0]["Body"], message[0]["MessageAttributes"])
    assert (task.name, task.kwargs) == ("record", {"n": 7})

    # And stats reports the queue (one now in flight) and its dead-letter queue
    stats = run_sqsx("stats", url, "--endpoint-url", endpoint_url, "--json")
    assert stats.returncode == 0, stats.stderr
    report = json.loads(stats.stdout)
    assert (report["visible"], report["in_flight"], report["delayed"]) == (24, 1, 0)
    assert report["dead_letter_queue"]["queue_url"] == dlq
    assert report["dead_letter_queue"]["visible"] == 2
    assert report["dead_letter_queue"]["max_receive_count"] == 3
    text = run_sqsx("stats", env={"SQSX_QUEUE_URL": url, "SQSX_ENDPOINT_URL": endpoint_url})
    assert "visible    24" in text.stdout
    assert f"dead-letter queue {dlq} (after 3 receives): 2 visible" in text.stdout


def test_send_to_a_fifo_queue_gives_each_copy_its_own_deduplication_id(
    sqs_client: Any, make_queue: Callable[..., str], endpoint_url: str
) -> None:
    # Given a FIFO queue without content-based deduplication
    url = make_queue("jobs", fifo=True)

    # When three identical tasks are sent to one group
    sent = run_sqsx(
        "send", "cli_app:queue", "record", "--app-dir", str(TESTS), "--queue-url", url,
        "--endpoint-url", endpoint_url, "--kwargs", '{"n": 1}', "--count", "3",
        "--group-id", "g1",
    )  # fmt: skip

    # Then all three are on the queue, in that group
    assert sent.returncode == 0, sent.stderr
    assert queue_counts(sqs_client, url) == (3, 0, 0)
    message = sqs_client.receive_message(QueueUrl=url, AttributeNames=["MessageGroupId"])
    assert message["Messages"][0]["Attributes"]["MessageGroupId"] == "g1"


# -- bad invocations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["worker", "cli_app"], "expected MODULE:ATTR (for example myapp.tasks:queue)", id="form"
        ),
        pytest.param(
            ["worker", "no_such_module:queue"],
            "cannot import 'no_such_module': no module named 'no_such_module'",
            id="missing-module",
        ),
        pytest.param(
            ["worker", "cli_app:nope"], "module 'cli_app' has no attribute 'nope'", id="attribute"
        ),
        pytest.param(
            ["worker", "cli_app:not_a_queue"],
            "cli_app:not_a_queue is a int, not a sqsx Queue or RawQueue",
            id="not-a-queue",
        ),
        pytest.param(
            ["worker", "cli_app:broken_factory"],
            "calling cli_app:broken_factory() failed: RuntimeError: no configuration found",
            id="factory-raises",
        ),
        pytest.param(
            ["worker", "broken_module:queue"],
            "importing 'broken_module' failed: ValueError: settings missing",
            id="import-raises",
        ),
        pytest.param(
            ["send", "cli_app:queue", "record", "--kwargs", "{n: 1"],
            "--kwargs is not valid JSON: Expecting property name",
            id="kwargs-json",
        ),
        pytest.param(
            ["send", "cli_app:queue", "record", "--kwargs", "[1]"],
            "--kwargs must be a JSON object, got a list",
            id="kwargs-not-object",
        ),
        pytest.param(
            ["send", "cli_app:raw", "record"], "cli_app:raw is a RawQueue", id="send-to-raw"
        ),
        pytest.param(
            ["send", "cli_app:queue", "record", "--queue-url", "http://127.0.0.1:9/0/q.fifo"],
            "http://127.0.0.1:9/0/q.fifo is a FIFO queue: give --group-id",
            id="fifo-without-group",
        ),
    ],
)
def test_a_bad_invocation_gets_one_line_and_exit_code_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    (tmp_path / "broken_module.py").write_text("raise ValueError('settings missing')\n")
    command, target, *rest = args
    result = run_sqsx(
        command, target, *rest, "--app-dir", str(TESTS), env={"PYTHONPATH": str(tmp_path)}
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"sqsx {command}: error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_a_queue_that_does_not_exist_is_a_failure_not_a_usage_error(endpoint_url: str) -> None:
    url = f"{endpoint_url}/000000000000/no-such-queue"
    result = run_sqsx("worker", *_worker_args(url, endpoint_url, "--drain"))
    assert result.returncode == 1
    assert f"sqsx worker: error: cannot read {url}: " in result.stderr
    assert "NonExistentQueue" in result.stderr or "QueueDoesNotExist" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_option_out_of_bounds_is_refused_by_the_parser() -> None:
    result = run_sqsx("worker", "cli_app:queue", "--max-messages", "11")
    assert result.returncode == 2
    assert "argument --max-messages: must be from 1 to 10, got 11" in result.stderr


def test_the_console_script_and_python_m_are_the_same_command() -> None:
    script = Path(sys.executable).parent / "sqsx"
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, env=_env()
    )
    assert result.returncode == 0
    assert result.stdout.startswith("sqsx ")
    assert run_sqsx("--version").stdout == result.stdout
