"""One consume run at a time: stop requests belong to their run, ``close`` knows the run's
own threads, and the Lambda import path stays free of the polling engine."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Consumer, queue_counts, wait_until

from sqsx import ConfigurationError, ConsumeOptions, Queue, SqsxError


def test_a_late_stop_request_from_a_finished_run_does_not_stop_the_next(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given a handler that outlives its run (stop_timeout=0) and asks for a stop afterwards
    url = make_queue()
    queue = Queue(url, sqs_client, min_backoff_seconds=0)
    release, asked = threading.Event(), threading.Event()

    def slow(context: dict[str, Any]) -> None:
        release.wait(10)
        queue.exit_gracefully()
        asked.set()

    queue.add_task_handler("slow", slow)
    queue.add_task_handler("quick", lambda context: None)
    queue.add_task("slow")
    first = Consumer(queue, max_threads=1, stop_timeout=0)
    assert wait_until(lambda: queue.stats().in_flight == 1)
    first.stop()
    release.set()
    assert asked.wait(10)

    # When the next run starts on the same queue object
    queue.add_task("quick")
    second = Consumer(queue, max_threads=1)
    try:
        # Then it keeps running and processes the new task
        assert wait_until(lambda: queue.stats().succeeded >= 1, timeout=15)
        time.sleep(0.3)  # the watcher polls every 50 ms: a leftover request would be seen
        assert second.thread.is_alive()
    finally:
        second.stop()


def test_a_stop_requested_before_a_run_stops_that_run_at_once(
    sqs_client: Any, queue_url: str
) -> None:
    queue = Queue(queue_url, sqs_client)
    queue.exit_gracefully()
    started = time.monotonic()
    queue.consume_messages(polling_wait_seconds=1, enable_signal_to_exit_gracefully=False)
    assert time.monotonic() - started < 5


def test_close_from_a_user_thread_named_like_ours_waits_for_the_run(
    sqs_client: Any, queue_url: str
) -> None:
    queue = Queue(queue_url, sqs_client)
    consumer = Consumer(queue, max_threads=2)
    assert wait_until(lambda: queue._consumer.running)
    still_running_after_close: list[bool] = []

    def close() -> None:
        queue.close()
        still_running_after_close.append(queue._consumer.running)

    closer = threading.Thread(target=close, name="sqsx-lookalike")
    closer.start()
    closer.join(20)
    consumer.stop()
    assert still_running_after_close == [False]  # it waited: it is not one of the run's


def test_close_from_a_handler_only_asks(sqs_client: Any, make_queue: Callable[..., str]) -> None:
    url = make_queue()
    queue = Queue(url, sqs_client)
    returned = threading.Event()

    def closes(context: dict[str, Any]) -> None:
        queue.close()  # from the run's own thread: must not wait for the run to end
        returned.set()

    queue.add_task_handler("closes", closes)
    queue.add_task("closes")
    consumer = Consumer(queue, max_threads=1)
    assert returned.wait(15)
    consumer.thread.join(15)
    assert not consumer.thread.is_alive()
    assert queue_counts(sqs_client, url) == (0, 0, 0)


def test_import_sqsx_lambda_loads_none_of_the_polling_engine() -> None:
    code = (
        "import sys, sqsx_lambda, sqsx; "
        "print(sorted(m for m in sys.modules if m.startswith(('sqsx', 'pydantic', 'rich'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    for module in ("engine", "inbox", "visibility", "batching", "stopping", "cli", "local"):
        assert f"'sqsx.{module}'" not in loaded
    assert "pydantic" not in loaded and "rich" not in loaded


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda c: Queue("http://127.0.0.1:1/0/q", c, min_backoff_seconds=-1), id="q"),
        pytest.param(lambda c: ConsumeOptions(max_messages=11), id="consume-options"),
        pytest.param(
            lambda c: __import__("sqsx_lambda").LambdaHandler(
                Queue("http://127.0.0.1:1/0/q", c), max_threads=0
            ),
            id="lambda-handler",
        ),
    ],
)
def test_bad_configuration_is_a_sqsx_error_and_a_value_error(
    sqs_client: Any, build: Callable[[Any], object]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        build(sqs_client)
    assert isinstance(info.value, SqsxError) and isinstance(info.value, ValueError)


def test_the_returned_types_are_exported() -> None:
    import sqsx
    import sqsx_lambda

    for name in ("Message", "Outcome", "Verdict", "Hook", "Processing", "StatsSnapshot"):
        assert name in sqsx.__all__ and hasattr(sqsx, name)
    for name in ("RecordResult", "Fate", "BatchResponse", "LambdaHandler"):
        assert name in sqsx_lambda.__all__ and hasattr(sqsx_lambda, name)
