"""The core's plain lane (``Dispatcher.plain_lane``) against ``Dispatcher.process``: the same
message gives the same Outcome and the handler the same context, for every way a message
can end; and the lane is refused whenever something must run around a handler. No server:
neither path makes an SQS call (the client's event hook counts them)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import pytest

from sqsx import NoRetry, Queue, RawQueue, Retry
from sqsx.codec import encode_kwargs
from sqsx.hooks import Hook, Processing
from sqsx.message import Message
from sqsx.outcome import Outcome
from sqsx.plainlane import Miss

URL = "http://127.0.0.1:9/000000000000/plain"


def message(task: object = "t", body: object = None, count: str = "2", **kwargs: Any) -> Message:
    raw: dict[str, Any] = {
        "MessageId": "mid-1",
        "ReceiptHandle": "rh-1",
        "Body": encode_kwargs(kwargs) if body is None else body,
        "Attributes": {"ApproximateReceiveCount": count},
    }
    if task is not None:
        raw["MessageAttributes"] = {"TaskName": {"DataType": "String", "StringValue": task}}
    return Message.from_boto3(raw)


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


class Seen:
    """Records the contexts a handler was called with."""

    def __init__(self) -> None:
        self.contexts: list[dict[str, Any]] = []

    def ok(self, context: dict[str, Any], a: int, b: str = "x") -> None:
        self.contexts.append(context)

    def retry(self, context: dict[str, Any]) -> None:
        raise Retry(min_backoff_seconds=7, max_backoff_seconds=9)

    def no_retry(self, context: dict[str, Any]) -> None:
        raise NoRetry()

    def boom(self, context: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    def exits(self, context: dict[str, Any]) -> None:
        raise SystemExit(3)

    def awaitable(self, context: dict[str, Any]) -> Any:
        return asyncio.sleep(0)  # a plain function returning an awaitable: run to completion

    def generator(self, context: dict[str, Any]) -> Any:
        yield 1  # refused: its body would never run

    def anything(self, context: dict[str, Any], **kwargs: Any) -> str:
        return "done"


def task_queue(client: Any, seen: Seen, **options: Any) -> Queue:
    queue = Queue(
        url=URL, sqs_client=client, min_backoff_seconds=5, max_backoff_seconds=60, **options
    )
    for name in ("ok", "retry", "no_retry", "boom", "exits", "awaitable", "generator", "anything"):
        queue.add_task_handler(name, getattr(seen, name))
    return queue


CASES = [
    pytest.param(message("ok", a=1), id="success"),
    pytest.param(message("ok", a=1, b="y:z"), id="success-colon-in-a-value"),
    pytest.param(message("anything", x={"nested": [1, {"k": "v"}]}), id="nested-kwargs"),
    pytest.param(message("anything", s="é\u2028"), id="escaped-unicode"),
    pytest.param(message("retry"), id="retry"),
    pytest.param(message("no_retry"), id="no-retry"),
    pytest.param(message("boom"), id="exception"),
    pytest.param(message("exits"), id="base-exception"),
    pytest.param(message("awaitable"), id="awaitable-result"),
    pytest.param(message("generator"), id="generator-result"),
    pytest.param(message("nobody"), id="unknown-task"),
    pytest.param(message(None), id="no-task-name"),
    pytest.param(message(""), id="empty-task-name"),
    pytest.param(message(7), id="task-name-not-a-string"),
    pytest.param(message("ok", b="y"), id="missing-kwarg"),
    pytest.param(message("ok", a=1, c=2), id="unexpected-kwarg"),
    pytest.param(message("ok", context=1, a=1), id="kwarg-named-like-the-context"),
    pytest.param(message("ok", body=b64('{"kwargs": {"a": 1, "a": 2}}')), id="duplicate-key"),
    pytest.param(message("ok", body=b64('{"kwargs": {"a": 1}, "kwargs": {"a": 2}}')), id="dup-top"),
    pytest.param(message("ok", body=b64('{"kwargs": 1, "kwargs": {"a": 2}}')), id="dup-top-scalar"),
    pytest.param(message("ok", body=b64('{"kwargs": {"a": NaN}}')), id="nan"),
    pytest.param(message("ok", body=b64('{"kwargs": {"a": 1e999}}')), id="too-large-a-float"),
    pytest.param(message("ok", body=b64('{"kwargs": {"a": "\\ud800"}}')), id="lone-surrogate"),
    pytest.param(message("ok", body=b64('{"kwargs": {"a": 1}} x')), id="extra-data"),
    pytest.param(message("ok", body=b64(' {"kwargs": {"a": 1}} ')), id="whitespace-around"),
    pytest.param(message("ok", body=b64('{"kwargs": [1]}')), id="kwargs-a-list"),
    pytest.param(
        message("ok", body=b64('{"kwargs": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}")),
        id="nested-too-deeply",
    ),
    pytest.param(message("ok", body=b64('{"kwargs": {"a": ' + "9" * 5000 + "}}")), id="huge-int"),
    pytest.param(message("ok", body=b64('{"args": {}}')), id="no-kwargs"),
    pytest.param(message("ok", body=b64("[1, 2]")), id="not-an-object"),
    pytest.param(message("ok", body="eyJrd2FyZ3MiOiB7ImEiOiAxfX0"), id="padding-stripped"),
    pytest.param(message("ok", body="eyJr!d2FyZ3MiOiB7ImEiOiAxfX0="), id="not-base64"),
    pytest.param(message("ok", body="é"), id="non-ascii-body"),
    pytest.param(message("ok", body="/w=="), id="not-utf8"),
    pytest.param(message("ok", body=None), id="body-default"),
    pytest.param(message("ok", count="x", a=1), id="unreadable-receive-count"),
]


def same(lane_outcome: Outcome, core_outcome: Outcome) -> None:
    assert lane_outcome.verdict is core_outcome.verdict
    assert lane_outcome.retry_after == core_outcome.retry_after
    assert lane_outcome.reason == core_outcome.reason
    assert type(lane_outcome.error) is type(core_outcome.error)


@pytest.mark.parametrize("poison_policy", ["retry", "delete"])
@pytest.mark.parametrize("msg", CASES)
def test_the_plain_lane_decides_as_process_does(
    offline_client: Any, msg: Message, poison_policy: str
) -> None:
    # Given a queue with nothing around its handlers, so that it offers a plain lane
    seen = Seen()
    queue = task_queue(offline_client, seen, poison_policy=poison_policy)
    lane = queue.dispatcher.plain_lane()
    assert lane is not None

    # When the same message goes through the lane and through process
    by_lane = lane(msg, "lambda-context")
    by_core = queue.dispatcher.process(msg, "lambda-context", runtime="lambda")

    # Then both decide the same fate, and a handler that ran saw the same context twice
    same(by_lane, by_core)
    assert len(seen.contexts) in (0, 2)
    if seen.contexts:
        assert seen.contexts[0] == seen.contexts[1]
        assert seen.contexts[0]["sqs_message"] is msg.raw
        assert seen.contexts[0]["lambda_context"] == "lambda-context"


@pytest.mark.parametrize("msg", CASES)
def test_attempt_gives_a_success_its_seconds_and_judge_the_rest_their_fate(
    offline_client: Any, msg: Message
) -> None:
    # Given the lanes of two like queues, so that each handler runs once per lane
    lanes = [task_queue(offline_client, Seen()).dispatcher.plain_lane() for _ in range(2)]
    first, second = lanes
    assert first is not None and second is not None

    # When the message is attempted on one and run whole on the other
    got = first.attempt(msg.raw, None)
    whole = second(msg, None)

    # Then a success is its handler's seconds, anything else a Miss that judges as the lane
    if isinstance(got, float):
        assert whole == Outcome.succeeded(whole.handler_seconds)
        assert got >= 0
    else:
        assert isinstance(got, Miss)
        same(first.judge(msg, got), whole)


def test_a_raw_queue_lane_decides_as_process_does(offline_client: Any) -> None:
    # Given a raw queue whose handler fails on one body and succeeds on another
    calls: list[tuple[str, Any]] = []

    def handler(queue_url: str, sqs_message: Any) -> None:
        calls.append((queue_url, sqs_message))
        if sqs_message["Body"] == "fail":
            raise ValueError("no")

    queue = RawQueue(url=URL, message_handler_function=handler, sqs_client=offline_client)
    lane = queue.dispatcher.plain_lane()
    assert lane is not None
    for body in ("fine", "fail"):
        msg = message(None, body=body)
        # When it goes through the lane and through process
        by_lane, by_core = lane(msg, None), queue.dispatcher.process(msg)
        # Then the fates and the handler's arguments are the same
        same(by_lane, by_core)
        assert calls[-1] == calls[-2] == (URL, msg.raw)


class Observer(Hook):
    def before_process(self, processing: Processing) -> None:
        pass


class Resolver(Hook):
    def resolve_message(self, message: Message) -> Message:
        return message


def _set_time_limit(queue: Queue) -> None:
    queue.add_task_handler("limited", lambda context: None, time_limit=5)


def _set_cap(queue: Queue) -> None:
    queue.add_task_handler("capped", lambda context: None, max_concurrency=1)


async def _coroutine(context: dict[str, Any]) -> None:
    pass


@pytest.mark.parametrize(
    "configure",
    [
        pytest.param(lambda q: q.add_hook(Observer()), id="observing-hook"),
        pytest.param(lambda q: q.add_hook(Resolver()), id="resolving-hook"),
        pytest.param(_set_time_limit, id="task-time-limit"),
        pytest.param(_set_cap, id="concurrency-cap"),
        pytest.param(lambda q: q.add_task_handler("async", _coroutine), id="async-handler"),
    ],
)
def test_no_plain_lane_while_something_runs_around_a_handler(
    offline_client: Any, configure: Callable[[Queue], None]
) -> None:
    # Given a queue that offers a plain lane
    queue = task_queue(offline_client, Seen())
    assert queue.dispatcher.plain_lane() is not None
    # When a hook, a time limit, a cap or an async handler is added
    configure(queue)
    # Then the lane is refused: such messages need begin's layers
    assert queue.dispatcher.plain_lane() is None


def test_no_plain_lane_with_a_queue_time_limit_or_an_extra_chain(offline_client: Any) -> None:
    # Given a queue with a time limit for every task, and one without
    limited = task_queue(offline_client, Seen(), time_limit=5)
    plain = task_queue(offline_client, Seen())
    # Then the first has no lane; the second none for a runtime chain that observes
    assert limited.dispatcher.plain_lane() is None
    assert plain.dispatcher.plain_lane(plain.dispatcher.hooks.plus(Observer())) is None
    assert plain.dispatcher.plain_lane(plain.dispatcher.hooks) is not None
