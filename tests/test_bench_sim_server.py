"""``bench.sim_server``: the simulated SQS over HTTP that the multi-process benchmark uses,
driven by a real boto3 client (AWS JSON protocol) on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import make_client

from sqsx import Queue, TaskMessage

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sim_endpoint(tmp_path: Path) -> Iterator[str]:
    port_file = tmp_path / "port"
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.sim_server", "--port-file", str(port_file)], cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text()):
            assert time.monotonic() < deadline, "the server did not start"
            assert server.poll() is None, "the server exited"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port_file.read_text()}"
    finally:
        server.terminate()
        server.wait(10)


def test_a_queue_runs_on_the_served_simulator(sim_endpoint: str) -> None:
    # Given a queue on the server and 25 tasks sent in batches
    client = make_client(sim_endpoint)
    url = client.create_queue(QueueName="tasks")["QueueUrl"]
    assert url.startswith(sim_endpoint)
    queue = Queue(url=url, sqs_client=client)
    seen: list[int] = []
    queue.add_task_handler("add", lambda context, n: seen.append(n))
    assert all(r.ok for r in queue.send_tasks(TaskMessage("add", {"n": n}) for n in range(25)))

    # When a worker drains it
    from sqsx import ConsumeOptions

    queue.run(ConsumeOptions(max_messages=10, max_threads=2, polling_wait_seconds=1, drain=True))

    # Then every task ran once and the queue is empty
    assert sorted(seen) == list(range(25))
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_errors_keep_their_sqs_codes(sim_endpoint: str) -> None:
    client: Any = make_client(sim_endpoint)
    with pytest.raises(ClientError) as caught:
        client.receive_message(QueueUrl=f"{sim_endpoint}/000000000000/missing")
    assert "NonExistentQueue" in caught.value.response["Error"]["Code"]
