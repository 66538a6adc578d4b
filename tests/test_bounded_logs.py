"""Bounded logs: a hostile producer's 256 KiB names never make a log line of 2,000 characters.

Task names, kwarg names, dict keys, data types and attribute names come from the wire;
every log line that quotes one cuts it (``sqsx.clip``). Both runtimes run one message of
each kind against the server, with every logger captured (sqsx's at DEBUG).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import Consumer, lambda_event, queue_counts, wait_until

from sqsx import Queue
from sqsx.clip import MAX_SHOWN_CHARS, clip, shown
from sqsx.codec import encode_kwargs
from sqsx_lambda import LambdaHandler
from sqsx_lambda.invoke import LocalContext

HUGE = 256 * 1024
LINE_LIMIT = 2_000


def _huge(char: str = "n") -> str:
    return char * HUGE


def _task(name: str) -> dict[str, dict[str, str]]:
    return {"TaskName": {"DataType": "String", "StringValue": name}}


def _hostile_messages() -> list[tuple[str, dict[str, Any]]]:
    """(body, attributes) of each kind: the name that reaches a reason is 256 KiB."""
    return [
        (encode_kwargs({}), _task(_huge("t"))),  # unknown task
        (encode_kwargs({_huge("k"): 1}), _task("plain")),  # unexpected kwarg
        # control characters, escaped 6 to 1 in JSON: 64 Ki of them fit in a message
        (encode_kwargs({_huge("\x01")[: HUGE // 4]: 1}), _task("plain")),
        (encode_kwargs({"order": {_huge("d"): "not an int"}}), _task("typed")),  # dict key
        (encode_kwargs({}), {"TaskName": {"DataType": "Number." + _huge("x"), "StringValue": "1"}}),
        (_duplicate_key_body(_huge("z")), _task("plain")),
    ]


def _duplicate_key_body(key: str) -> str:
    raw = f'{{"kwargs": {{"{key}": 1, "{key}": 2}}}}'.encode()
    return base64.urlsafe_b64encode(raw).decode()


def _queue(url: str, client: Any) -> Queue:
    queue = Queue(url=url, sqs_client=client, poison_policy="delete")

    def plain(context: dict[str, Any]) -> None:
        return None

    def typed(context: dict[str, Any], order: dict[str, int], n: int = 0) -> None:
        return None

    queue.add_task_handler("plain", plain)
    queue.add_task_handler("typed", typed)
    return queue


@pytest.fixture
def every_line() -> Iterator[list[str]]:
    """Every log line written while the test runs, formatted with its traceback."""
    lines: list[str] = []
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name.startswith(("botocore", "urllib3")):  # DEBUG request dumps
                return
            lines.append(formatter.format(record))

    root = logging.getLogger()
    handler, level = Keep(logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    quiet = [logging.getLogger(n) for n in ("botocore", "urllib3")]
    before = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.WARNING)
    yield lines
    root.removeHandler(handler)
    root.setLevel(level)
    for lg, old in zip(quiet, before, strict=True):
        lg.setLevel(old)


def _hostile_queue(
    client: Any, make_queue: Callable[..., str]
) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """A queue with one message of each hostile kind, sent as a hostile producer would
    (boto3 itself, no sqsx checks)."""
    url = make_queue("huge")
    messages = _hostile_messages()
    for body, attributes in messages:
        client.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)
    return url, messages


@pytest.mark.only_on(
    "moto",
    reason="sends wire values SQS itself refuses (a 256 KiB attribute type), as a hostile "
    "producer on a lax server could; LocalStack refuses them at the door, as AWS does",
)
def test_polling_worker_lines_stay_short(
    sqs_client: Any, make_queue: Callable[..., str], every_line: list[str]
) -> None:
    # Given one message of each hostile kind on the queue
    url, messages = _hostile_queue(sqs_client, make_queue)

    # When a worker consumes them (each is unprocessable, deleted with an ERROR line)
    consumer = Consumer(_queue(url, sqs_client), max_threads=2)
    try:
        assert wait_until(lambda: queue_counts(sqs_client, url) == (0, 0, 0), timeout=30)
    finally:
        consumer.stop()

    # Then each got its line, and no line reaches 2,000 characters
    unprocessable = [line for line in every_line if "unprocessable" in line]
    assert len(unprocessable) == len(messages), unprocessable
    assert max(map(len, every_line)) < LINE_LIMIT, max(every_line, key=len)[:300]
    assert all("chars]" in line for line in unprocessable)  # each says it was cut


@pytest.mark.only_on(
    "moto",
    reason="sends wire values SQS itself refuses (a 256 KiB attribute type), as a hostile "
    "producer on a lax server could; LocalStack refuses them at the door, as AWS does",
)
def test_lambda_lines_stay_short(
    sqs_client: Any, make_queue: Callable[..., str], every_line: list[str]
) -> None:
    # Given the same messages as Lambda records, and a record whose attribute (of a
    # 256 KiB name) is not an object, as only a hand-written event can be
    url, messages = _hostile_queue(sqs_client, make_queue)
    event = lambda_event(sqs_client, url, len(messages))
    damaged = dict(event["Records"][0])
    damaged["messageId"] = "damaged"
    damaged["messageAttributes"] = {_huge("a"): "not an object"}
    event["Records"].append(damaged)
    handler = LambdaHandler(_queue(url, sqs_client), max_threads=2)

    # When the handler runs the event
    try:
        response = handler(event, LocalContext())
    finally:
        handler.close()

    # Then every record was judged (deleted: poison_policy="delete") and every line is short
    assert response == {"batchItemFailures": []}
    unprocessable = [line for line in every_line if "unprocessable" in line]
    assert len(unprocessable) == len(messages) + 1, unprocessable
    assert max(map(len, every_line)) < LINE_LIMIT, max(every_line, key=len)[:300]


@pytest.mark.parametrize(
    ("value", "longest"),
    [
        pytest.param("short", 7, id="short-is-kept"),
        pytest.param("n" * HUGE, MAX_SHOWN_CHARS + 20, id="long-is-cut"),
        pytest.param("\x00" * HUGE, MAX_SHOWN_CHARS + 20, id="escapes-count"),
        pytest.param("\U0010ffff" * HUGE, MAX_SHOWN_CHARS + 20, id="wide-escapes-count"),
    ],
)
def test_shown_is_bounded_and_says_the_full_length(value: str, longest: int) -> None:
    text = shown(value)
    assert len(text) <= longest
    if len(value) > MAX_SHOWN_CHARS:
        assert text.endswith(f"...[{len(value)} chars]")
    else:
        assert text == repr(value)


def test_clip_keeps_the_head_and_counts_the_rest() -> None:
    assert clip("abc") == "abc"
    assert clip("a" * 130) == "a" * MAX_SHOWN_CHARS + "...[+10 chars]"
