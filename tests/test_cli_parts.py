"""The CLI's parts in-process: progress lines, the drain bar, the summary, signal handling,
loading ``MODULE:ATTR``, overrides, and the ``make demo`` script."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import cli_app
import pytest
from conftest import wait_until

from sqsx import ConsumeOptions, Queue, RawQueue, StatsSnapshot
from sqsx.cli.progress import (
    CounterLines,
    DrainBar,
    format_counters,
    format_summary,
    make_reporter,
)
from sqsx.cli.target import UsageError, load_queue, region_of, with_overrides
from sqsx.sqs import read_depth

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

SNAPSHOT = StatsSnapshot(
    received=1_250,
    succeeded=1_000,
    retried=150,
    no_retry=40,
    unprocessable=10,
    released=3,
    in_flight=16,
    elapsed=12.0,
    latency_p50=0.0042,
    latency_p95=0.0125,
    latency_max=1.5,
)


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


# -- formatting ---------------------------------------------------------------------------------


def test_counter_line_shows_rate_and_every_counter() -> None:
    assert format_counters(SNAPSHOT, 83.25) == (
        "sqsx: 83.2 msg/s | processed 1,200 | succeeded 1,000 | retried 150 | dropped 40 | "
        "unprocessable 10 | in flight 16"
    )


def test_summary_has_totals_and_handler_latency() -> None:
    assert format_summary(SNAPSHOT, 10.0, "drained").splitlines() == [
        "sqsx: drained after 10.0 s: processed 1,200 (120.0 msg/s), received 1,250",
        "  succeeded 1,000 | retried 150 | dropped (NoRetry) 40 | unprocessable 10 | released 3",
        "  handler latency p50 4.2 ms | p95 12.5 ms | max 1500.0 ms",
    ]


@pytest.mark.parametrize(
    ("url", "region"),
    [
        pytest.param("https://sqs.eu-west-1.amazonaws.com/123456789012/q", "eu-west-1", id="aws"),
        pytest.param("http://127.0.0.1:9324/000000000000/q", None, id="local"),
        pytest.param("https://vpce-1.sqs.example.com/1/q", None, id="other"),
    ],
)
def test_region_of_a_queue_url(url: str, region: str | None) -> None:
    assert region_of(url) == region


# -- reporters ------------------------------------------------------------------------------------


def test_counter_lines_come_at_the_interval_with_the_live_counters(
    sqs_client: Any, queue_url: str
) -> None:
    # Given a queue that ran three tasks
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    queue.add_task_handler("t", lambda context: None)
    for _ in range(3):
        queue.add_task("t")
    queue.run(ConsumeOptions(max_messages=10, polling_wait_seconds=1, wait_seconds=0, drain=True))
    stream = io.StringIO()

    # When counter lines run every 50 ms
    with CounterLines(queue, 0.05, stream):
        assert wait_until(lambda: stream.getvalue().count("\n") >= 2, timeout=5)

    # Then each line carries the counters
    lines = stream.getvalue().splitlines()
    assert all(line.startswith("sqsx: ") for line in lines)
    assert "processed 3 | succeeded 3" in lines[0]


@pytest.mark.parametrize(
    ("drain", "terminal", "interval", "kind"),
    [
        pytest.param(True, True, 5.0, DrainBar, id="drain-on-a-terminal"),
        pytest.param(True, False, 5.0, CounterLines, id="drain-in-a-log"),
        pytest.param(False, True, 5.0, CounterLines, id="no-drain"),
        pytest.param(True, True, 0.0, type(None), id="off"),
    ],
)
def test_the_reporter_fits_the_stream(
    sqs_client: Any, queue_url: str, drain: bool, terminal: bool, interval: float, kind: type
) -> None:
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    stream = Terminal() if terminal else io.StringIO()
    assert type(make_reporter(queue, drain=drain, interval=interval, stream=stream)) is kind


def test_drain_bar_counts_against_the_queue_depth(sqs_client: Any, queue_url: str) -> None:
    # Given five messages waiting
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    for _ in range(5):
        queue.add_task("t")
    stream = Terminal()

    # When the bar is drawn on a terminal
    bar = DrainBar(queue, stream)
    bar.start()
    bar.stop()

    # Then it shows none of five done, with rate and ETA
    assert read_depth(sqs_client, queue_url).visible == 5
    assert "draining" in stream.getvalue()
    assert "0/5" in stream.getvalue()
    assert "msg/s  ETA" in stream.getvalue()


# -- signals --------------------------------------------------------------------------------------


def test_two_signals_ask_for_a_graceful_then_a_forced_stop(sqs_client: Any, queue_url: str) -> None:
    # Given a run with signal handling on, as `sqsx worker` runs it, busy with a task that
    # holds a graceful stop open
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    started, release = threading.Event(), threading.Event()
    queue.add_task_handler("hold", lambda context: (started.set(), release.wait(10)))
    queue.add_task("hold")
    before = signal.getsignal(signal.SIGTERM)

    def two_sigterms() -> None:
        assert started.wait(10)
        os.kill(os.getpid(), signal.SIGTERM)
        # one at a time: two pending SIGTERMs would merge into one
        assert wait_until(lambda: len(queue.stop_signals) == 1, timeout=5)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=two_sigterms)
    sender.start()

    # When SIGTERM arrives twice during it
    try:
        queue.run(
            ConsumeOptions(polling_wait_seconds=1, wait_seconds=0),
            enable_signal_to_exit_gracefully=True,
        )
        running_at_return = queue.stats().in_flight
    finally:
        release.set()
        sender.join(10)

    # Then the run stopped as forced, without waiting for the task, knows which signals did
    # it, and the old handler is back
    assert queue.stop_signals == (signal.SIGTERM, signal.SIGTERM)
    assert queue.forced_stop
    assert running_at_return == 1
    assert signal.getsignal(signal.SIGTERM) == before


# -- loading and overrides ------------------------------------------------------------------------


def test_load_queue_accepts_an_instance_a_factory_and_a_dotted_path() -> None:
    assert load_queue("cli_app:queue", str(TESTS)) is cli_app.queue
    assert load_queue("cli_app:make_queue", str(TESTS)) is cli_app.queue
    with pytest.raises(UsageError, match="is a int, not a sqsx Queue"):
        load_queue("cli_app:not_a_queue", str(TESTS))


def test_overrides_give_a_queue_of_the_same_kind_and_handlers(endpoint_url: str) -> None:
    # Given the module's Queue and RawQueue
    url = f"{endpoint_url}/000000000000/elsewhere"

    # When the URL and the endpoint are overridden
    tasks = with_overrides(cli_app.queue, queue_url=url, endpoint_url=endpoint_url, pool=30)
    raw = with_overrides(cli_app.raw, queue_url=None, endpoint_url=endpoint_url)

    # Then the copies talk to the new endpoint with the original handlers and settings
    assert isinstance(tasks, Queue)
    assert tasks.url == url
    assert tasks.sqs_client.meta.endpoint_url == endpoint_url
    assert tasks.sqs_client.meta.config.max_pool_connections == 30
    assert tasks.task_names == cli_app.queue.task_names == ["block", "nap", "record", "where"]
    assert (tasks.min_backoff_seconds, tasks.max_backoff_seconds) == (0, 1)
    assert isinstance(raw, RawQueue)
    assert raw.url == cli_app.raw.url
    assert raw.dispatcher.handler is cli_app.raw.dispatcher.handler
    assert with_overrides(cli_app.queue, queue_url=None, endpoint_url=None) is cli_app.queue


# -- the demo -------------------------------------------------------------------------------------


def test_the_demo_runs_both_runtimes_and_exits_0() -> None:
    # Given a small demo (the full one enqueues 2,000 tasks)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQSX_", "AWS_"))}
    env["SQSX_DEMO_TASKS"] = "150"

    # When it runs as `make demo` runs it
    result = subprocess.run(
        [sys.executable, "examples/demo.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )

    # Then the worker drained the queue, the poison message is dead-lettered, and the
    # sample event went through LambdaHandler
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "sqsx: drained after" in result.stderr
    assert "left on the queue: 0, in the dead-letter queue: 1" in result.stdout
    assert "lambda  7 records" in result.stdout
    assert "3 deleted, 4 in batchItemFailures" in result.stdout
    assert "S3      one 5 MiB task in each runtime: ok" in result.stdout
    assert "all checks passed" in result.stdout
