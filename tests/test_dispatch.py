"""The processing core: one message in, one ``Outcome`` out. No server: ``process`` makes no
SQS call, which the client's event hook checks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from sqsx import NoRetry, Outcome, Queue, RawQueue, Retry, Verdict
from sqsx.codec import encode_kwargs
from sqsx.message import Message

URL = "http://127.0.0.1:9/000000000000/dispatch"
SECRET = "s3cr3t-payload-value"


def task_message(
    task_name: str | None = "t",
    receive_count: int = 1,
    body: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """A message in boto3's ReceiveMessage shape."""
    raw: dict[str, Any] = {
        "MessageId": f"mid-{task_name}-{receive_count}",
        "ReceiptHandle": "rh-1",
        "MD5OfBody": "0" * 32,
        "Body": encode_kwargs(kwargs) if body is None else body,
        "Attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "1"},
        "MessageAttributes": {},
    }
    if task_name is not None:
        raw["MessageAttributes"]["TaskName"] = {"DataType": "String", "StringValue": task_name}
    return raw


def make_queue(client: Any, handler: Callable[..., Any] | None = None, **options: Any) -> Queue:
    queue = Queue(URL, client, **options)
    if handler is not None:
        queue.add_task_handler("t", handler)
    return queue


# -- outcome mapping -----------------------------------------------------------------------


def test_success_deletes_and_the_handler_gets_context_and_kwargs(offline_client: Any) -> None:
    calls: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def handler(context: dict[str, Any], **kwargs: Any) -> None:
        calls.append((context, kwargs))

    raw = task_message(a=1, b="two", c=[3])
    outcome = make_queue(offline_client, handler).process(raw)

    assert outcome == Outcome(Verdict.SUCCEEDED, None, "", outcome.handler_seconds)
    assert outcome.delete
    [(context, kwargs)] = calls
    assert context == {"queue_url": URL, "task_name": "t", "sqs_message": raw}
    assert kwargs == {"a": 1, "b": "two", "c": [3]}


def test_lambda_context_is_added_when_given(offline_client: Any) -> None:
    seen: list[dict[str, Any]] = []
    marker = object()
    make_queue(offline_client, lambda context: seen.append(context)).process(
        task_message(), lambda_context=marker
    )
    assert seen[0]["lambda_context"] is marker


def test_envelope_object_is_accepted_too(offline_client: Any) -> None:
    seen: list[int] = []
    outcome = make_queue(offline_client, lambda context, n: seen.append(n)).process(
        Message.from_boto3(task_message(n=7))
    )
    assert (outcome.verdict, seen) == (Verdict.SUCCEEDED, [7])


def _raise(error: BaseException) -> Callable[..., None]:
    def handler(*args: Any, **kwargs: Any) -> None:
        raise error

    return handler


HANDLER_OUTCOMES = [
    # handler behaviour, receive count -> verdict, retry_after (queue backoff 30..900)
    pytest.param(_raise(NoRetry()), 4, Verdict.NO_RETRY, None, id="no-retry-deletes"),
    pytest.param(_raise(Retry()), 3, Verdict.RETRIED, 120, id="retry-uses-queue-backoff"),
    pytest.param(_raise(Retry(min_backoff_seconds=0)), 3, Verdict.RETRIED, 0, id="retry-min-0"),
    pytest.param(_raise(Retry(0, 0)), 1, Verdict.RETRIED, 0, id="retry-0-0"),
    pytest.param(_raise(Retry(10, 50)), 2, Verdict.RETRIED, 20, id="retry-min-max"),
    pytest.param(_raise(Retry(10, 50)), 9, Verdict.RETRIED, 50, id="retry-capped-by-its-max"),
    pytest.param(_raise(Retry(max_backoff_seconds=45)), 4, Verdict.RETRIED, 45, id="retry-max"),
    pytest.param(_raise(RuntimeError("boom")), 1, Verdict.RETRIED, 30, id="exception-first"),
    pytest.param(_raise(KeyError("k")), 2, Verdict.RETRIED, 60, id="exception-second"),
    pytest.param(_raise(ValueError("v")), 30, Verdict.RETRIED, 900, id="exception-capped"),
]


@pytest.mark.parametrize(("handler", "count", "verdict", "retry_after"), HANDLER_OUTCOMES)
def test_handler_outcomes(
    offline_client: Any,
    handler: Callable[..., None],
    count: int,
    verdict: Verdict,
    retry_after: int | None,
) -> None:
    outcome = make_queue(offline_client, handler).process(task_message(receive_count=count))
    assert (outcome.verdict, outcome.retry_after) == (verdict, retry_after)
    assert outcome.delete is (retry_after is None)


@pytest.mark.parametrize(
    ("error", "level"),
    [
        pytest.param(NoRetry(), logging.INFO, id="no-retry-info"),
        pytest.param(Retry(), logging.INFO, id="retry-info"),
        pytest.param(RuntimeError("boom"), logging.WARNING, id="exception-warning"),
    ],
)
def test_outcome_log_levels(
    offline_client: Any, error: BaseException, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="sqsx"):
        make_queue(offline_client, _raise(error)).process(task_message())
    [record] = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert record.levelno == level
    assert "task=t" in record.getMessage()


def test_queue_backoff_settings_are_used(offline_client: Any) -> None:
    queue = make_queue(
        offline_client, _raise(RuntimeError()), min_backoff_seconds=5, max_backoff_seconds=12
    )
    delays = [queue.process(task_message(receive_count=n)).retry_after for n in (1, 2, 3)]
    assert delays == [5, 10, 12]


UNPROCESSABLE = [
    pytest.param(task_message("ghost"), "UnknownTaskError", id="unknown-task"),
    pytest.param(task_message(None), "TaskName is missing", id="no-taskname"),
    pytest.param(task_message(body="%%%not-base64"), "not base64", id="undecodable-body"),
    pytest.param(task_message(body="eyJhcmdzIjogW119"), 'no "kwargs"', id="no-kwargs-key"),
    pytest.param(task_message(a=1, extra=2), "TaskArgumentsError", id="unexpected-kwarg"),
    pytest.param(task_message(), "TaskArgumentsError", id="missing-kwarg"),
]


@pytest.mark.parametrize(("raw", "reason"), UNPROCESSABLE)
def test_unprocessable_is_backed_off_and_the_handler_never_runs(
    offline_client: Any, raw: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a handler for "t" that takes exactly one kwarg
    calls: list[int] = []
    queue = make_queue(offline_client, lambda context, a: calls.append(a))
    raw["Attributes"]["ApproximateReceiveCount"] = "2"

    # When a message it cannot take is processed
    with caplog.at_level(logging.DEBUG, logger="sqsx"):
        outcome = queue.process(raw)

    # Then it is backed off (60 s on the second receive) so redrive can dead-letter it
    assert (outcome.verdict, outcome.retry_after) == (Verdict.UNPROCESSABLE, 60)
    assert reason in outcome.reason
    assert calls == []
    assert outcome.handler_seconds == 0.0
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.WARNING
    assert raw["MessageId"] in record.getMessage()


@pytest.mark.parametrize(("raw", "reason"), UNPROCESSABLE)
def test_poison_policy_delete_drops_unprocessable_with_an_error_line(
    offline_client: Any, raw: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    queue = make_queue(offline_client, lambda context, a: None, poison_policy="delete")
    with caplog.at_level(logging.INFO, logger="sqsx"):
        outcome = queue.process(raw)
    assert (outcome.verdict, outcome.retry_after, outcome.delete) == (
        Verdict.UNPROCESSABLE,
        None,
        True,
    )
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.ERROR
    assert raw["MessageId"] in record.getMessage()
    assert reason in record.getMessage()


def test_unknown_task_line_names_the_task(
    offline_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sqsx"):
        make_queue(offline_client).process(task_message("ghost"))
    assert "'ghost'" in caplog.text
    assert "mid-ghost-1" in caplog.text


def test_a_handler_registered_later_is_used(offline_client: Any) -> None:
    queue = make_queue(offline_client)
    assert queue.process(task_message("late")).verdict is Verdict.UNPROCESSABLE
    queue.add_task_handler("late", lambda context: None)
    assert queue.process(task_message("late")).verdict is Verdict.SUCCEEDED
    assert queue.remove_task_handler("late") is True
    assert queue.process(task_message("late")).verdict is Verdict.UNPROCESSABLE


# -- logs ----------------------------------------------------------------------------------

LOGGED_CASES = [
    # handler, task name, whether a line above DEBUG is expected
    pytest.param(lambda context, secret: None, "t", False, id="success"),
    pytest.param(_raise(NoRetry()), "t", True, id="no-retry"),
    pytest.param(_raise(Retry(1, 2)), "t", True, id="retry"),
    pytest.param(_raise(RuntimeError("boom")), "t", True, id="exception"),
    pytest.param(lambda context: None, "t", True, id="kwargs-do-not-fit"),
    pytest.param(lambda context, secret: None, "ghost", True, id="unknown-task"),
]


@pytest.mark.parametrize(("handler", "task_name", "logged"), LOGGED_CASES)
def test_log_lines_carry_the_message_id_and_never_the_body(
    offline_client: Any,
    handler: Callable[..., Any],
    task_name: str,
    logged: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = task_message(task_name, secret=SECRET)
    queue = make_queue(offline_client, handler)
    with caplog.at_level(logging.DEBUG, logger="sqsx"):
        queue.process(raw)
    lines = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert bool(lines) is logged
    for record in lines:
        text = caplog.handler.format(record)  # with any traceback
        assert raw["MessageId"] in record.getMessage()
        assert SECRET not in text
        assert raw["Body"] not in text


# -- RawQueue ------------------------------------------------------------------------------


def test_raw_handler_gets_queue_url_and_the_message(offline_client: Any) -> None:
    seen: list[tuple[str, Any]] = []
    queue = RawQueue(URL, lambda url, message: seen.append((url, message)), offline_client)
    raw = {
        "MessageId": "m",
        "ReceiptHandle": "r",
        "Body": "plain text, not a task",
        "Attributes": {"ApproximateReceiveCount": "1"},
    }
    assert queue.process(raw).verdict is Verdict.SUCCEEDED
    assert seen == [(URL, raw)]


@pytest.mark.parametrize(
    ("error", "verdict", "retry_after"),
    [
        pytest.param(NoRetry(), Verdict.NO_RETRY, None, id="no-retry"),
        pytest.param(Retry(min_backoff_seconds=0), Verdict.RETRIED, 0, id="retry-0"),
        pytest.param(OSError("disk"), Verdict.RETRIED, 60, id="exception"),
    ],
)
def test_raw_handler_outcomes(
    offline_client: Any, error: BaseException, verdict: Verdict, retry_after: int | None
) -> None:
    queue = RawQueue(URL, _raise(error), offline_client)
    raw = {"MessageId": "m", "ReceiptHandle": "r", "Body": "x"}
    raw["Attributes"] = {"ApproximateReceiveCount": "2"}
    outcome = queue.process(raw)
    assert (outcome.verdict, outcome.retry_after) == (verdict, retry_after)
