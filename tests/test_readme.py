"""Every Python block of the README runs as written, in order, as a reader would paste them
into one session: the blocks that talk to SQS against an embedded local SQS (``LocalSqs``,
the server of ``sqsx local``), reached through boto3's own ``AWS_ENDPOINT_URL_SQS``.

The README's AWS URLs (``https://sqs.eu-west-1.amazonaws.com/123456789012/NAME``) resolve
on the local server by queue name. The few names a block uses without defining them are
placeholders for the reader's own code, given below.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import queue_counts, wait_until

from sqsx.cli.target import make_client
from sqsx.local import LocalSqs

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
BUCKET = re.compile(r'S3Payloads\(.*?,\s*"([a-z0-9.-]+)"')
AWS_URL = re.compile(r"https://sqs\.[a-z0-9-]+\.amazonaws\.com/\d{12}/([A-Za-z0-9_.-]+)")


def readme_blocks() -> list[str]:
    return BLOCK.findall(README.read_text())


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalSqs]:
    """A local SQS of its own, which ``boto3.client("sqs")`` reaches without arguments."""
    with LocalSqs(port=0) as local:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", local.endpoint_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", local.endpoint_url)  # same port, path-style
        monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
        yield local


def test_the_readme_has_the_blocks_this_test_knows() -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 8
    assert "consume_messages" in blocks[0]
    assert any("orders.fifo" in block for block in blocks)


def test_every_python_block_of_the_readme_runs(
    server: LocalSqs, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the queues the README names, made as `sqsx local --queue NAME` makes them, but
    # the FIFO one without content-based deduplication (the harder case)
    blocks = readme_blocks()
    client = make_client(server.endpoint_url)
    urls = {}
    for name in sorted({m for block in blocks for m in AWS_URL.findall(block)}):
        attributes = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
        urls[name] = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    assert set(urls) >= {"tasks", "orders.fifo"}
    s3 = make_client(server.endpoint_url, service="s3")
    for bucket in sorted({m for block in blocks for m in BUCKET.findall(block)}):
        s3.create_bucket(Bucket=bucket)
    namespace: dict[str, Any] = {
        "__name__": "readme",
        # placeholders for the reader's own code and settings
        "QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/tasks",
        "order_is_cancelled": lambda order_id: False,
        "payment_service_is_down": lambda: False,
        "record_handler": lambda record: None,
        "big_text": "x" * 1_200_000,  # over SQS's 1 MiB: through S3
    }

    # When each block runs in turn in one namespace; the first consumes until stopped, so
    # it is stopped (as Ctrl-C would) once its handler has printed
    stopper = threading.Thread(target=_stop_once_printed, args=(namespace, capsys), daemon=True)
    stopper.start()
    for number, block in enumerate(blocks):
        try:
            exec(compile(block, f"README.md python block {number + 1}", "exec"), namespace)
        except Exception as err:
            raise AssertionError(f"README python block {number + 1} failed:\n{block}") from err
    stopper.join(5)

    # Then the quickstart's task ran, and every block's messages reached the local queues
    assert "sending 'hello' to ada@example.com" in namespace["_printed"]
    assert queue_counts(client, urls["orders.fifo"]) == (1, 0, 0)
    visible, _, delayed = queue_counts(client, urls["tasks"])
    assert delayed == 1  # the send_task with delay_seconds=60
    assert visible >= 100  # send_tasks' hundred resize tasks, and the typed task
    assert not [r for r in namespace["results"] if not r.ok]
    # And the large task's body went to S3
    assert s3.list_objects_v2(Bucket="my-payload-bucket")["KeyCount"] == 1


def _stop_once_printed(namespace: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    printed: list[str] = []

    def handler_ran() -> bool:
        printed.append(capsys.readouterr().out)
        return "sending 'hello'" in "".join(printed)

    ran = wait_until(handler_ran, timeout=60)
    namespace["_printed"] = "".join(printed)
    if ran:
        namespace["queue"].exit_gracefully()
