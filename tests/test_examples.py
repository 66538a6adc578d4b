"""The seed README's two scripts (examples/) run unchanged: on localhost:9324 with region
``elasticmq`` and account 000000000000, until Ctrl+C, which stops them gracefully."""

from __future__ import annotations

import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ScriptRun, make_client

from sqsx.local import LocalSqs

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PORT = 9324
QUEUE_URL = "http://localhost:9324/000000000000/tests"


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _answers_sqs(port: int) -> bool:
    try:
        make_client(f"http://127.0.0.1:{port}", connect_timeout=2, read_timeout=5).list_queues()
    except Exception:
        return False
    return True


@pytest.fixture(scope="module")
def sqs_on_9324() -> Iterator[bool]:
    """An SQS server on 127.0.0.1:9324, where the scripts expect ElasticMQ; ``True`` when
    it is this fixture's own.

    Starts ``LocalSqs(port=9324)`` when the port is free; when another local SQS already
    serves it (an ElasticMQ, ``sqsx local``, a parallel test run), the scripts use that one.
    """
    deadline = time.monotonic() + 30
    server: LocalSqs | None = None
    while server is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"port {PORT} is taken by something that is not SQS")
        if _port_is_free(PORT):
            try:
                server = LocalSqs(port=PORT).start()
            except OSError:  # lost the race for the port: look again
                continue
        elif _answers_sqs(PORT):
            break
        else:
            time.sleep(0.5)
    yield server is not None
    if server is not None:
        server.stop()


@pytest.fixture
def fresh_tests_queue(sqs_on_9324: bool) -> None:
    """No queue ``tests`` on our own server: each script creates it anew.

    A stopped script may leave a long poll open on the server for up to 10 s; on a queue
    that is still there it would take (and hide for 30 s) the next script's message.
    """
    if sqs_on_9324:
        client = make_client(f"http://127.0.0.1:{PORT}")
        for url in client.list_queues(QueueNamePrefix="tests").get("QueueUrls", []):
            if url.rsplit("/", 1)[1] == "tests":
                client.delete_queue(QueueUrl=url)


EXAMPLE_RUNS = [
    pytest.param(
        "script.py",
        "context={'queue_url': 'http://localhost:9324/000000000000/tests', 'task_name': "
        "'my_task', 'sqs_message': {'MessageId': ",
        [
            "'Body': 'eyJrd2FyZ3MiOiB7ImEiOiAxLCAiYiI6IDIsICJjIjogM319'",
            "'MessageAttributes': {'TaskName': {'StringValue': 'my_task', 'DataType': 'String'}}",
            "'ApproximateReceiveCount': '1'",
        ],
        "}}, a=1, b=2, c=3",
        id="script",
    ),
    pytest.param(
        "raw_script.py",
        "queue_url=http://localhost:9324/000000000000/tests, sqs_message={'MessageId': ",
        [
            "'Body': 'My Message'",
            "'MessageAttributes': {'Attr1': {'StringValue': 'Attr1', 'DataType': 'String'}}",
            "'ApproximateReceiveCount': '1'",
        ],
        "}}",
        id="raw_script",
    ),
]


@pytest.mark.parametrize(("script", "start", "parts", "end"), EXAMPLE_RUNS)
def test_example_runs_until_ctrl_c(
    fresh_tests_queue: None, tmp_path: Path, script: str, start: str, parts: list[str], end: str
) -> None:
    # Given the script running from an unrelated directory
    run = ScriptRun([sys.executable, str(EXAMPLES / script)], cwd=str(tmp_path))
    try:
        # When its handler has printed the message it sent
        line = run.wait_for(start, timeout=60).rstrip("\n")

        # Then Ctrl+C stops it gracefully with exit code 0
        run.send_signal(signal.SIGINT)
        assert run.finish(timeout=30) == 0, run.errors
    finally:
        run.kill()
    assert line.startswith(start)
    assert line.endswith(end)
    for part in parts:
        assert part in line
    assert f"INFO:sqsx.queue:Starting consuming tasks, queue_url={QUEUE_URL}" in run.errors
    assert "INFO:sqsx.queue:Starting graceful shutdown process" in run.errors
    assert f"INFO:sqsx.queue:Stopping consuming tasks, queue_url={QUEUE_URL}" in run.errors
    assert "Traceback" not in run.errors
