"""Compatibility with the published sqsx 0.7.0: its tasks are ours, ours are its.

sqsx 0.7.0 is installed from PyPI into a venv of its own and run in subprocesses against
the same local SQS server. The venv (12 s to create on an idle machine, up to 95 s under
load) lives outside the clone, in ``~/.cache/sqsx/`` and named after
the pin and the Python version, like LocalStack's: every clone on the machine, CI's fresh
ones included, creates it once.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import queue_counts

from sqsx import Queue
from sqsx.codec import encode_kwargs

VENV_DIR = (
    Path.home() / ".cache" / "sqsx" / f"venv-sqsx070-py{sys.version_info[0]}.{sys.version_info[1]}"
)
KWARGS = {"a": 1, "b": "two", "c": [3, 4.5], "d": {"e": None, "f": True}, "u": "héllo ✓"}

SCRIPT = textwrap.dedent(
    """
    import importlib.metadata, json, sys
    import boto3
    from sqsx import Queue

    mode, endpoint, url = sys.argv[1:4]
    assert importlib.metadata.version("sqsx") == "0.7.0"
    client = boto3.client(
        "sqs", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
    )
    queue = Queue(url=url, sqs_client=client)
    if mode == "send":
        response = queue.add_task("compat", **json.loads(sys.argv[4]))
        print(json.dumps({"message_id": response["MessageId"]}))
    else:
        def handler(context, **kwargs):
            print(json.dumps({
                "task_name": context["task_name"],
                "message_id": context["sqs_message"]["MessageId"],
                "kwargs": kwargs,
            }))
        queue.add_task_handler("compat", handler)
        queue.consume_messages(
            run_forever=False, enable_signal_to_exit_gracefully=False,
            polling_wait_seconds=1, wait_seconds=1,
        )
    """
)


@pytest.fixture(scope="session")
def sqsx070_python() -> Iterator[Path]:
    """The python of a venv holding the published sqsx 0.7.0 (created once, then reused)."""
    VENV_DIR.mkdir(parents=True, exist_ok=True)
    env_dir, ready = VENV_DIR / "env", VENV_DIR / "ready"
    python = env_dir / "bin" / "python"
    with (VENV_DIR / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be creating it right now
        if not ready.exists():
            shutil.rmtree(env_dir, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=120)
            pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            subprocess.run([*pip, "sqsx==0.7.0"], check=True, timeout=300)
            ready.touch()
    yield python


def run_070(python: Path, cwd: Path, *args: str) -> Any:
    """Run sqsx 0.7.0 in isolated mode (our checkout is not on its path); its JSON output."""
    result = subprocess.run(
        [str(python), "-I", "-c", SCRIPT, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_a_task_sent_by_070_is_consumed_by_ours(
    sqsx070_python: Path, endpoint_url: str, sqs_client: Any, queue_url: str, tmp_path: Path
) -> None:
    # Given a task sent by sqsx 0.7.0
    [sent] = run_070(sqsx070_python, tmp_path, "send", endpoint_url, queue_url, json.dumps(KWARGS))

    # When our Queue consumes it
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    calls: list[tuple[dict[str, Any], dict[str, Any]]] = []
    queue.add_task_handler("compat", lambda context, **kwargs: calls.append((context, kwargs)))
    queue.consume_messages(run_forever=False, polling_wait_seconds=1, wait_seconds=0)

    # Then our handler got its kwargs, its bytes are ours byte for byte, and it is deleted
    [(context, kwargs)] = calls
    assert kwargs == KWARGS
    assert context["task_name"] == "compat"
    assert context["sqs_message"]["MessageId"] == sent["message_id"]
    assert context["sqs_message"]["Body"] == encode_kwargs(KWARGS)
    assert queue_counts(sqs_client, queue_url) == (0, 0, 0)


def test_a_task_sent_by_ours_is_consumed_by_070(
    sqsx070_python: Path, endpoint_url: str, sqs_client: Any, queue_url: str, tmp_path: Path
) -> None:
    # Given a task sent by our Queue
    sent = Queue(url=queue_url, sqs_client=sqs_client).add_task("compat", **KWARGS)

    # When sqsx 0.7.0 consumes one batch
    [handled] = run_070(sqsx070_python, tmp_path, "consume", endpoint_url, queue_url)

    # Then its handler got the kwargs and it deleted the message
    assert handled == {"task_name": "compat", "message_id": sent["MessageId"], "kwargs": KWARGS}
    assert queue_counts(sqs_client, queue_url) == (0, 0, 0)
