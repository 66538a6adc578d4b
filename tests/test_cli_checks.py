"""What a new user trips on, through the ``sqsx`` command against the local SQS: sends that
cannot work are refused, credentials that cannot work end a worker, an app module that
fails to import says where, and a local queue URL needs no region."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import queue_counts
from test_cli import TESTS, run_sqsx

from sqsx.codec import decode_task

# No credentials anywhere, and no instance metadata lookups (tests talk to 127.0.0.1 only).
NO_CREDENTIALS = {
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
    "AWS_CONFIG_FILE": "/nonexistent/config",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _send(url: str, endpoint_url: str, *args: str) -> Any:
    return run_sqsx(
        "send", "cli_app:queue", *args, "--app-dir", str(TESTS), "--queue-url", url,
        "--endpoint-url", endpoint_url,
    )  # fmt: skip


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["no_such_task"],
            "cli_app:queue has no handler for task 'no_such_task' (registered: block, nap, "
            "record, where); --no-check sends it anyway",
            id="unknown-task",
        ),
        pytest.param(
            ["record", "--kwargs", "{}"],
            "kwargs do not fit the handler of task 'record': missing a required argument: 'n'",
            id="missing-kwarg",
        ),
        pytest.param(
            ["record", "--kwargs", '{"n": 1, "colour": "red"}'],
            "got an unexpected keyword argument 'colour'",
            id="unexpected-kwarg",
        ),
    ],
)
def test_send_refuses_what_no_handler_can_run(
    make_queue: Callable[..., str],
    sqs_client: Any,
    endpoint_url: str,
    args: list[str],
    message: str,
) -> None:
    # Given an empty queue
    url = make_queue()

    # When a task the module cannot run is sent
    result = _send(url, endpoint_url, *args)

    # Then it exits 2 with one line saying why, and nothing was sent
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert line.startswith("sqsx send: error: ")
    assert message in line
    assert queue_counts(sqs_client, url) == (0, 0, 0)


def test_send_with_no_check_sends_anyway(
    make_queue: Callable[..., str], sqs_client: Any, endpoint_url: str
) -> None:
    url = make_queue()
    result = _send(url, endpoint_url, "no_such_task", "--kwargs", '{"x": 1}', "--no-check")
    assert result.returncode == 0, result.stderr
    message = sqs_client.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    task = decode_task(message[0]["Body"], message[0]["MessageAttributes"])
    assert (task.name, task.kwargs) == ("no_such_task", {"x": 1})


def test_an_app_module_that_fails_to_import_names_the_file_and_line(tmp_path: Path) -> None:
    # Given a module that fails on its third line, inside a call into the standard library
    app = tmp_path / "broken.py"
    app.write_text("import os\n\nDATABASE_URL = os.environ['DATABASE_URL']\n")

    # When a worker is started on it
    result = run_sqsx("worker", "broken:queue", "--app-dir", str(tmp_path))

    # Then the one line names the exception and the application's own line
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert "importing 'broken' failed: KeyError: 'DATABASE_URL'" in line
    assert f"(at {app}:3; --log-level DEBUG shows the traceback)" in line


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "typo.py").write_text("x = 1\ndef f(:\n")
    result = run_sqsx("send", "typo:queue", "t", "--app-dir", str(tmp_path))
    assert result.returncode == 2
    assert f"(at {tmp_path / 'typo.py'}:2;" in _one_line(result.stderr)


def test_a_worker_without_credentials_exits_1_naming_the_cause_and_the_fix(
    tmp_path: Path, endpoint_url: str, make_queue: Callable[..., str]
) -> None:
    # Given an app whose client has no credentials at all (no --endpoint-url, which would
    # give a local server dummy ones), and a worker without --drain
    url = make_queue()
    (tmp_path / "nocreds.py").write_text(
        "import boto3\nfrom sqsx import Queue\n"
        f"client = boto3.client('sqs', endpoint_url={endpoint_url!r}, region_name='us-east-1')\n"
        f"queue = Queue(url={url!r}, sqs_client=client)\n"
    )

    # When it starts
    result = run_sqsx(
        "worker", "nocreds:queue", "--app-dir", str(tmp_path), "--polling-wait", "1",
        env=NO_CREDENTIALS,
    )  # fmt: skip

    # Then it exits 1 at once with one line: the cause and what to do, no retry loop
    assert result.returncode == 1, result.stderr
    line = _one_line(result.stderr)
    assert line.startswith(f"sqsx worker: error: cannot read {url}: NoCredentialsError: ")
    assert "no AWS credentials found; set AWS_PROFILE or AWS_ACCESS_KEY_ID" in line
    assert "visibility_timeout" not in result.stderr


@pytest.mark.only_on(
    "moto",
    reason="tests sqsx local's one set of queues for every region (moto behind sqsx's "
    "middleware); LocalStack keeps queues per region, as AWS does",
)
def test_stats_on_a_local_url_needs_no_region_nor_endpoint(
    make_queue: Callable[..., str], sqs_client: Any
) -> None:
    # Given a queue on the local server with two messages
    url = make_queue()
    for body in ("a", "b"):
        sqs_client.send_message(QueueUrl=url, MessageBody=body)

    # When stats is given only the URL, with no region and no endpoint set...
    plain = run_sqsx("stats", url, "--json")
    # ...or with a region the queue was not created in
    other_region = run_sqsx("stats", url, "--json", env={"AWS_DEFAULT_REGION": "eu-west-1"})

    # Then both read the queue (sqsx local serves one set of queues for every region)
    for result in (plain, other_region):
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["visible"] == 2


def test_stats_without_any_region_says_how_to_give_one() -> None:
    result = run_sqsx("stats", "https://example.com/123456789012/q", env=NO_CREDENTIALS)
    assert result.returncode == 2
    assert "no AWS region: use a https://sqs.REGION.amazonaws.com/... queue URL" in _one_line(
        result.stderr
    )
