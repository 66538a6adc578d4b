"""One visibility path for both runtimes (``sqsx.sqs``): ten entries to a call, SQS's 12-hour
cap in one place, bounded retries of throttling/5xx/network errors, refused entries reported
with their codes; and the client timeouts sqsx recommends. Against moto over HTTP."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import CallCounter, fail_first_call, lambda_event, make_client, wait_until
from servers import deviates_on

from sqsx import Queue, Retry
from sqsx.backoff import MAX_VISIBILITY_TIMEOUT_SECONDS
from sqsx.cli.target import make_client as cli_client
from sqsx.sqs import BatchEntry, capped_visibility, change_visibility_now
from sqsx.timeouts import client_config, read_timeout_problem
from sqsx_lambda import LambdaHandler
from sqsx_lambda.invoke import LocalContext


def _received(client: Any, url: str, count: int) -> list[BatchEntry]:
    event = lambda_event(client, url, count)
    return [BatchEntry(r["messageId"], r["receiptHandle"], 0) for r in event["Records"]]


def test_changes_go_ten_to_a_call_and_refused_entries_come_back_with_their_code(
    sqs_client: Any, make_queue: Callable[..., str], call_counter: CallCounter
) -> None:
    # Given 12 received messages, and an entry whose receipt handle SQS cannot know
    url = make_queue("path", VisibilityTimeout=60)
    for n in range(12):
        sqs_client.send_message(QueueUrl=url, MessageBody=f"m{n}")
    entries = [*_received(sqs_client, url, 12), BatchEntry("bogus", "not-a-handle", 0)]
    call_counter.counts.clear()

    # When all 13 are made visible again
    refused = change_visibility_now(sqs_client, url, entries)

    # Then two calls carried them, the bogus one came back with SQS's code and no retry,
    # and the 12 others are visible at once
    assert call_counter.counts == {"ChangeMessageVisibilityBatch": 2}
    assert [(f.entry.message_id, f.retryable) for f in refused] == [("bogus", False)]
    assert refused[0].code  # moto: ReceiptHandleIsInvalid
    assert wait_until(lambda: len(_received_ids(sqs_client, url)) >= 1, timeout=5)


def _received_ids(client: Any, url: str) -> list[str]:
    messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [m["MessageId"] for m in messages]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        pytest.param("ThrottlingException", 400, id="throttled"),
        pytest.param("InternalError", 500, id="5xx"),
    ],
)
def test_a_throttled_or_failed_call_is_tried_again(
    code: str, status: int, endpoint_url: str, make_queue: Callable[..., str]
) -> None:
    # Given a client whose first ChangeMessageVisibilityBatch fails (botocore's retries off)
    client = make_client(endpoint_url, retries={"total_max_attempts": 1})
    url = make_queue("retry", VisibilityTimeout=60)
    client.send_message(QueueUrl=url, MessageBody="m")
    entries = _received(client, url, 1)
    calls = fail_first_call(client, "ChangeMessageVisibilityBatch", code, status)

    # When its visibility is set to 0
    refused = change_visibility_now(client, url, entries, sleep=lambda s: None)

    # Then a second call did it: nothing refused, the message visible at once
    assert refused == []
    assert len(calls) == 2
    assert _received_ids(client, url) == [entries[0].message_id]


def test_a_failed_call_delays_no_other_entry_s_first_attempt(
    endpoint_url: str, make_queue: Callable[..., str]
) -> None:
    # Given 12 received messages and a client whose first visibility call (the first ten)
    # is throttled
    client = make_client(endpoint_url, retries={"total_max_attempts": 1})
    url = make_queue("first-attempts", VisibilityTimeout=60)
    for n in range(12):
        client.send_message(QueueUrl=url, MessageBody=f"m{n}")
    entries = _received(client, url, 12)
    fail_first_call(client, "ChangeMessageVisibilityBatch", "ThrottlingException", 400)
    timeline: list[str] = []
    client.meta.events.register(
        "before-parameter-build.sqs.ChangeMessageVisibilityBatch",
        lambda params, **_: timeline.append(f"call:{len(params['Entries'])}"),
    )

    # When all 12 are made visible
    refused = change_visibility_now(
        client, url, entries, sleep=lambda seconds: timeline.append("wait")
    )

    # Then the last two had their first attempt before the wait for the retry of the ten
    assert timeline == ["call:10", "call:2", "wait", "call:10"]
    assert refused == []


def test_retries_stop_at_the_attempt_bound_and_at_the_deadline(
    endpoint_url: str, make_queue: Callable[..., str]
) -> None:
    # Given a client on which every ChangeMessageVisibilityBatch is throttled
    client = make_client(endpoint_url, retries={"total_max_attempts": 1})
    url = make_queue("bound")
    client.send_message(QueueUrl=url, MessageBody="m")
    entries = _received(client, url, 1)
    calls: list[str] = []

    def throttle(**_: Any) -> None:
        calls.append("call")
        raise ClientError(
            {"Error": {"Code": "Throttling"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
            "ChangeMessageVisibilityBatch",
        )

    client.meta.events.register("before-call.sqs.ChangeMessageVisibilityBatch", throttle)
    slept: list[float] = []

    # When it is tried with 3 attempts and no deadline
    refused = change_visibility_now(client, url, entries, attempts=3, sleep=slept.append)

    # Then it gave up after 3 tries (waiting 0.2 s, then 0.4 s), reporting the code
    assert len(calls) == 3
    assert slept == [0.2, 0.4]
    assert [(f.code, f.entry.message_id) for f in refused] == [
        ("Throttling", entries[0].message_id)
    ]

    # When it is tried with the deadline nearer than the first retry delay
    late = change_visibility_now(client, url, entries, deadline=time.monotonic() + 0.1)

    # Then it made one try only
    assert len(calls) == 4
    assert [f.code for f in late] == ["Throttling"]


@deviates_on(
    "localstack",
    reason="LocalStack accepts a visibility change reaching past 12 hours from the receive, "
    "which SQS refuses (API_ChangeMessageVisibility: the 12 hours count from the receive)",
)
def test_the_twelve_hour_cap_is_applied_in_one_place(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given a message and a change asking for more than SQS's 12 hours
    url = make_queue("cap")
    sqs_client.send_message(QueueUrl=url, MessageBody="m")
    (entry,) = _received(sqs_client, url, 1)
    sent: list[int] = []
    sqs_client.meta.events.register(
        "before-parameter-build.sqs.ChangeMessageVisibilityBatch",
        lambda params, **_: sent.extend(e["VisibilityTimeout"] for e in params["Entries"]),
    )

    # When it is sent as asked, then cut by what the message has been held (a minute)
    too_long = change_visibility_now(
        sqs_client, url, [BatchEntry(entry.message_id, entry.receipt_handle, 50_000)]
    )
    held = capped_visibility(50_000, held_seconds=60)
    fits = change_visibility_now(
        sqs_client, url, [BatchEntry(entry.message_id, entry.receipt_handle, held)]
    )

    # Then the first went out capped at 43,200 s, which SQS still refuses as the sender's
    # fault, not retried: the 12 hours count from the receive (docs.aws.amazon.com/
    # AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html); the
    # second is accepted
    assert sent == [MAX_VISIBILITY_TIMEOUT_SECONDS, MAX_VISIBILITY_TIMEOUT_SECONDS - 60]
    assert [(f.code, f.retryable) for f in too_long] == [("InvalidParameterValue", False)]
    assert fits == []
    # and a message held for 20 minutes gets 20 minutes less
    assert capped_visibility(50_000, 20 * 60) == MAX_VISIBILITY_TIMEOUT_SECONDS - 1200
    assert capped_visibility(30, 20 * 60) == 30
    assert capped_visibility(-5) == 0


def test_lambda_retries_a_throttled_visibility_change_and_the_backoff_holds(
    endpoint_url: str, make_queue: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a failing task on a queue with a 60 s visibility timeout, and a client whose
    # first ChangeMessageVisibilityBatch is throttled
    client = make_client(endpoint_url, retries={"total_max_attempts": 1})
    url = make_queue("lambda-retry", VisibilityTimeout=60)
    queue = Queue(url=url, sqs_client=client)

    def fail(context: dict[str, Any]) -> None:
        raise Retry(min_backoff_seconds=1, max_backoff_seconds=1)

    queue.add_task_handler("fail", fail)
    queue.add_task("fail")
    event = lambda_event(client, url, 1)
    calls = fail_first_call(client, "ChangeMessageVisibilityBatch", "ThrottlingException", 400)
    handler = LambdaHandler(queue, max_threads=1)

    # When the record runs
    try:
        with caplog.at_level(logging.ERROR):
            response = handler(event, LocalContext())
    finally:
        handler.close()

    # Then the call was made again, nothing was logged as failed, and the record comes
    # back after its 1 s backoff rather than after 60 s
    assert len(response["batchItemFailures"]) == 1
    assert len(calls) == 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert wait_until(lambda: bool(_received_ids(client, url)), timeout=10)


def test_client_config_reads_longer_than_the_long_poll() -> None:
    # Given sqsx's recommended config for a 20 s long poll (and for a 5 s one)
    config = client_config()
    short = client_config(polling_wait_seconds=5, max_pool_connections=30)

    # Then its read timeout exceeds WaitTimeSeconds, connects are bounded, retries bounded
    assert config.read_timeout == 30 and short.read_timeout == 15
    assert config.connect_timeout == 5
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert short.max_pool_connections == 30


def test_a_read_timeout_shorter_than_the_long_poll_is_named(endpoint_url: str) -> None:
    # Given clients with a read timeout below, at and above a 20 s long poll
    below = make_client(endpoint_url, read_timeout=10)
    default = make_client(endpoint_url)  # botocore's 60 s

    # Then only the short one is a problem, and the text says how to fix it
    problem = read_timeout_problem(below, 20)
    assert problem is not None and "client_config" in problem and "10" in problem
    assert read_timeout_problem(default, 20) is None
    assert read_timeout_problem(object(), 20) is None


def test_the_cli_client_uses_sqsx_timeouts(endpoint_url: str) -> None:
    # Given the client the CLI makes for --endpoint-url
    client = cli_client(endpoint_url, pool=18)

    # Then it carries client_config's timeouts and retries
    config: Config = client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (5, 30)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert config.max_pool_connections == 18
