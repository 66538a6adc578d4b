"""The core's hook surface: order, isolation, and what each runtime calls (moto for SQS)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Consumer, lambda_event, queue_counts, wait_until

from sqsx import Hook, Message, Outcome, Processing, Queue, RawQueue, Verdict
from sqsx.backoff import BackoffPolicy
from sqsx.exceptions import MessageDecodeError
from sqsx.hooks import HookChain
from sqsx.sending import OutgoingMessage
from sqsx_lambda import LambdaHandler
from sqsx_lambda.invoke import LocalContext

URL = "http://127.0.0.1:1/000000000000/hooks"


class Recorder(Hook):
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name = name
        self.calls = calls

    def before_process(self, processing: Processing) -> None:
        self.calls.append(f"{self.name}.before:{processing.task}:{processing.runtime}")

    def after_process(self, processing: Processing, outcome: Outcome) -> None:
        self.calls.append(f"{self.name}.after:{outcome.verdict.value}")


class Broken(Hook):
    def before_process(self, processing: Processing) -> None:
        raise RuntimeError("hook bug")

    def after_process(self, processing: Processing, outcome: Outcome) -> None:
        raise RuntimeError("hook bug")


def message(body: str = "eyJrd2FyZ3MiOiB7fX0=", task: str | None = "t") -> Message:
    raw: dict[str, Any] = {"MessageId": "m1", "ReceiptHandle": "r1", "Body": body}
    if task is not None:
        raw["MessageAttributes"] = {"TaskName": {"DataType": "String", "StringValue": task}}
    return Message.from_boto3(raw)


def offline_queue(**kwargs: Any) -> Queue:
    import boto3

    client = boto3.client(
        "sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return Queue(URL, client, min_backoff_seconds=5, max_backoff_seconds=5, **kwargs)


def test_hooks_run_in_order_around_the_handler_and_after_in_reverse() -> None:
    calls: list[str] = []
    queue = offline_queue(hooks=[Recorder("a", calls), Recorder("b", calls)])
    queue.add_task_handler("t", lambda context: calls.append("handler"))
    outcome = queue.process(message())
    assert outcome.verdict is Verdict.SUCCEEDED
    assert calls == [
        "a.before:t:worker",
        "b.before:t:worker",
        "handler",
        "b.after:succeeded",
        "a.after:succeeded",
    ]


def test_unreadable_and_unknown_messages_go_through_the_hooks_with_no_task_label() -> None:
    calls: list[str] = []
    queue = offline_queue(hooks=[Recorder("a", calls)])
    assert queue.process(message(task="nobody")).verdict is Verdict.UNPROCESSABLE
    assert queue.process(message(body="%%%")).verdict is Verdict.UNPROCESSABLE
    # unknown task names are folded into "-": hooks never see an unbounded label
    assert calls == ["a.before:-:worker", "a.after:unprocessable"] * 2


def test_a_failing_hook_is_logged_and_changes_no_fate(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[int] = []
    queue = offline_queue(hooks=[Broken()])
    queue.add_task_handler("t", lambda context: ran.append(1))
    with caplog.at_level(logging.ERROR, logger="sqsx.hooks"):
        outcome = queue.process(message())
    assert outcome.verdict is Verdict.SUCCEEDED and ran == [1]
    lines = [r.getMessage() for r in caplog.records if r.name == "sqsx.hooks"]
    assert len(lines) == 2
    assert all("hook Broken." in line and "message_id=m1" in line for line in lines)


class Resolver(Hook):
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def resolve_message(self, message: Message) -> Message:
        if self.error is not None:
            raise self.error
        return Message.from_boto3({**message.raw, "Body": "eyJrd2FyZ3MiOiB7Im4iOiA3fX0="})


def test_resolve_message_replaces_the_body_or_decides_the_fate() -> None:
    seen: list[int] = []
    queue = offline_queue(hooks=[Resolver(None)])
    queue.add_task_handler("t", lambda context, n: seen.append(n))
    assert queue.process(message()).verdict is Verdict.SUCCEEDED
    assert seen == [7]  # the handler saw the resolved body: {"kwargs": {"n": 7}}

    never = offline_queue(hooks=[Resolver(MessageDecodeError("pointer is malformed"))])
    never.add_task_handler("t", lambda context: None)
    outcome = never.process(message())
    assert (outcome.verdict, outcome.retry_after) == (Verdict.UNPROCESSABLE, 5)

    passing = offline_queue(hooks=[Resolver(ConnectionError("S3 timed out"))])
    passing.add_task_handler("t", lambda context: None)
    outcome = passing.process(message())
    assert (outcome.verdict, outcome.retry_after) == (Verdict.RETRIED, 5)
    assert outcome.reason == "preparing raised ConnectionError"


def test_a_hook_that_is_not_a_hook_is_refused_at_construction() -> None:
    with pytest.raises(TypeError, match=r"is not a sqsx\.hooks\.Hook"):
        HookChain([object()])  # type: ignore[list-item]


def test_only_overridden_methods_are_called() -> None:
    chain = HookChain([Hook()])
    assert not chain.observes and not chain.resolves and not chain.watches_deletes
    from sqsx.registry import HandlerRegistry
    from sqsx.routes import TaskDispatcher

    dispatcher = TaskDispatcher(URL, BackoffPolicy(1, 1), "retry", HandlerRegistry(), chain)
    assert dispatcher.process(message()).verdict is Verdict.UNPROCESSABLE


class Tagger(Hook):
    def before_send(self, outgoing: OutgoingMessage) -> OutgoingMessage:
        attributes = {**outgoing.attributes, "Tag": {"DataType": "String", "StringValue": "x"}}
        return dataclasses.replace(outgoing, attributes=attributes)


class Deletions(Hook):
    def __init__(self) -> None:
        self.deleted: list[str] = []
        self.lock = threading.Lock()

    def after_delete(self, message: Message, queue_url: str) -> None:
        with self.lock:
            self.deleted.append(message.message_id)


def received_tags(client: Any, url: str, count: int) -> list[str]:
    tags: list[str] = []
    for _ in range(10):
        response = client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=1
        )
        for m in response.get("Messages", []):
            tags.append(m["MessageAttributes"]["Tag"]["StringValue"])
        if len(tags) >= count:
            break
    return tags


def test_before_send_runs_on_every_send_path(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    from sqsx import RawMessage, TaskMessage

    url = make_queue()
    tasks = Queue(url, sqs_client, hooks=[Tagger()])
    raw = RawQueue(url, lambda queue_url, sqs_message: None, sqs_client, hooks=[Tagger()])
    tasks.add_task("t")
    tasks.send_task("t", {})
    tasks.send_tasks([TaskMessage("t"), TaskMessage("t")])
    raw.add_message("hello")
    raw.send_message("hello")
    raw.send_messages(["a", RawMessage("b")])
    assert received_tags(sqs_client, url, 8) == ["x"] * 8


def deleting_queue(client: Any, url: str, succeeding: int) -> tuple[Queue, Deletions, list[str]]:
    """A queue with a ``Deletions`` hook, ``succeeding`` tasks that succeed and one that
    fails (backed off for 60 s); returns the ids of the succeeding ones."""
    deletions = Deletions()
    queue = Queue(url, client, min_backoff_seconds=60, hooks=[deletions])
    queue.add_task_handler("ok", lambda context: None)
    queue.add_task_handler("fails", lambda context: 1 / 0)
    sent = [queue.add_task("ok")["MessageId"] for _ in range(succeeding)]
    queue.add_task("fails")
    return queue, deletions, sent


def test_after_delete_follows_the_delete_in_the_worker(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    url = make_queue()
    queue, deletions, sent = deleting_queue(sqs_client, url, succeeding=5)
    consumer = Consumer(queue, max_threads=3, max_messages=10)
    try:
        assert wait_until(lambda: len(deletions.deleted) == 5 and queue_counts(
            sqs_client, url) == (0, 1, 0))  # fmt: skip
    finally:
        consumer.stop()
    assert sorted(deletions.deleted) == sorted(sent)  # the failed one is not reported deleted


def test_after_delete_covers_the_records_lambda_deletes(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    url = make_queue()
    queue, deletions, ok = deleting_queue(sqs_client, url, succeeding=3)
    handler = LambdaHandler(queue, max_threads=4)
    try:
        response = handler(lambda_event(sqs_client, url, 4), LocalContext())
    finally:
        handler.close()
    assert len(response["batchItemFailures"]) == 1
    assert sorted(deletions.deleted) == sorted(ok)


def test_hooks_added_later_apply_to_process_and_to_lambda(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    url = make_queue()
    calls: list[str] = []
    queue = Queue(url, sqs_client)
    queue.add_task_handler("t", lambda context: None)
    handler = LambdaHandler(queue, max_threads=1)
    queue.add_hook(Recorder("late", calls))
    queue.add_task("t")
    try:
        handler(lambda_event(sqs_client, url, 1), LocalContext())
    finally:
        handler.close()
    assert calls == ["late.before:t:lambda", "late.after:succeeded"]
    assert [type(h).__name__ for h in queue.hooks] == ["Recorder"]
