"""One core decides every fate: the same misbehaving handlers, run by the polling worker and
by ``LambdaHandler`` inline and on threads, get the same verdict, the same backoff on the
server and the same log line (against moto)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import lambda_event, queue_counts, wait_until

from sqsx import Queue
from sqsx_lambda import LambdaHandler
from sqsx_lambda.invoke import LocalContext


class CustomStop(BaseException):
    """A BaseException that is neither SystemExit nor KeyboardInterrupt."""


async def _records(ran: list[str]) -> None:
    await asyncio.sleep(0)
    ran.append("coroutine body")


async def _async_fails(ran: list[str]) -> None:
    ran.append("async body")
    raise RuntimeError("async handler failed")


def _make(kind: str, queue: Queue, ran: list[str]) -> Callable[..., Any]:
    """The handler for case ``kind``; each records that its body ran."""

    def raises(err: BaseException) -> Callable[..., Any]:
        def handler(context: dict[str, Any]) -> None:
            ran.append(kind)
            raise err

        return handler

    def generator(context: dict[str, Any]) -> Iterator[None]:
        ran.append("generator body")  # never runs: calling it only makes a generator
        yield

    def stops_its_queue(context: dict[str, Any]) -> None:
        ran.append(kind)
        queue.exit_gracefully() if kind == "exit_gracefully" else queue.close()

    async def async_fails(context: dict[str, Any]) -> None:
        await _async_fails(ran)

    handlers: dict[str, Callable[..., Any]] = {
        "system_exit": raises(SystemExit(3)),
        "keyboard_interrupt": raises(KeyboardInterrupt()),
        "base_exception": raises(CustomStop()),
        "returns_coroutine": lambda context: _records(ran),
        "async_def_fails": async_fails,
        "generator": generator,
        "exit_gracefully": stops_its_queue,
        "close": stops_its_queue,
    }
    return handlers[kind]


# case -> (fate on the server, what ran, the dispatcher's log line)
CASES = {
    "system_exit": (
        "retried",
        ["system_exit"],
        "ERROR handler raised SystemExit (a BaseException: it does not stop the "
        "worker), retrying in 1s",
    ),
    "keyboard_interrupt": (
        "retried",
        ["keyboard_interrupt"],
        "ERROR handler raised KeyboardInterrupt (a BaseException: it does not stop the worker), "
        "retrying in 1s",
    ),
    "base_exception": (
        "retried",
        ["base_exception"],
        "ERROR handler raised CustomStop (a BaseException: it does not stop the worker), "
        "retrying in 1s",
    ),
    "returns_coroutine": ("deleted", ["coroutine body"], None),
    "async_def_fails": ("retried", ["async body"], "WARNING handler raised RuntimeError, retrying"),
    "generator": ("retried", [], "WARNING handler raised HandlerResultError, retrying in 1s"),
    "exit_gracefully": ("deleted", ["exit_gracefully"], None),
    "close": ("deleted", ["close"], None),
}
RUNTIMES = ["worker", "lambda-inline", "lambda-8-threads"]


def _run(runtime: str, queue: Queue, client: Any, url: str) -> None:
    if runtime == "worker":
        queue.consume_messages(
            max_messages=1,
            polling_wait_seconds=1,
            wait_seconds=0,
            run_forever=False,
            enable_signal_to_exit_gracefully=False,
        )
        return
    handler = LambdaHandler(queue, max_threads=1 if runtime == "lambda-inline" else 8)
    try:
        event = lambda_event(client, url, 1)
        response = handler(event, LocalContext())
    finally:
        handler.close()
    if not response["batchItemFailures"]:  # Lambda deletes what was not reported
        record = event["Records"][0]
        client.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])


def _server_fate(client: Any, url: str) -> str:
    """``deleted``, or ``retried`` when the message is hidden now and back within a few
    seconds with a second receive (the 1 s backoff, not the queue's 60 s timeout)."""
    counts = queue_counts(client, url)  # right after the run: acks are flushed by then
    if counts == (0, 0, 0):
        return "deleted"
    assert counts == (0, 1, 0), f"not hidden for its backoff: {counts}"
    started = time.monotonic()
    messages: list[dict[str, Any]] = []

    def back() -> bool:
        messages.extend(
            client.receive_message(
                QueueUrl=url, AttributeNames=["All"], WaitTimeSeconds=1, VisibilityTimeout=1
            ).get("Messages", [])
        )
        return bool(messages)

    assert wait_until(back, timeout=6), "not back after its 1 s backoff"
    assert time.monotonic() - started < 6
    assert messages[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    return "retried"


def _dispatch_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = []
    for record in caplog.records:
        if record.name == "sqsx.dispatch":
            text = re.sub(r" message_id=.*", "", record.getMessage())
            lines.append(f"{record.levelname} {text}")
    return lines


@pytest.mark.parametrize("kind", list(CASES))
def test_the_same_handler_gets_the_same_fate_in_every_runtime(
    sqs_client: Any,
    make_queue: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    expected_fate, expected_ran, expected_line = CASES[kind]
    seen: dict[str, tuple[str, list[str], list[str]]] = {}
    for runtime in RUNTIMES:
        # Given a queue whose only handler misbehaves in one way, and one task for it
        url = make_queue(VisibilityTimeout=60)
        queue = Queue(url, sqs_client, min_backoff_seconds=1, max_backoff_seconds=1)
        ran: list[str] = []
        queue.add_task_handler("t", _make(kind, queue, ran))
        queue.add_task("t")
        caplog.clear()

        # When the runtime processes it
        with caplog.at_level(logging.INFO, logger="sqsx"):
            _run(runtime, queue, sqs_client, url)
        seen[runtime] = (_server_fate(sqs_client, url), ran, _dispatch_lines(caplog))

    # Then every runtime left the same fate on the server, ran the same body, logged alike
    for runtime, (fate, ran, lines) in seen.items():
        assert fate == expected_fate, runtime
        assert ran == expected_ran, runtime
        if expected_line is None:
            assert lines == [], runtime
        else:
            assert len(lines) == 1, (runtime, lines)
            assert lines[0].startswith(expected_line), (runtime, lines[0])
    assert len({tuple(lines) for _, _, lines in seen.values()}) == 1
