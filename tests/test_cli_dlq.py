"""``sqsx dlq ls|peek|redrive|replay`` against the servers, in-process through
``sqsx.cli.main``. Redrive needs StartMessageMoveTask, which moto does not implement
(getmoto/moto #10265): it is tested on LocalStack, and on moto for its clear refusal."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import dlq_app
import pytest
from conftest import queue_counts, wait_until

from sqsx import Queue
from sqsx.cli import main

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def sqsx(capsys: pytest.CaptureFixture[str], endpoint_url: str) -> Run:
    """``sqsx dlq ARGS --endpoint-url ...`` in-process: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["dlq", *args, "--endpoint-url", endpoint_url])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def pair(sqs_client: Any, make_queue: Callable[..., str]) -> tuple[str, str]:
    """(source URL, dead-letter queue URL): the source dead-letters after one receive."""
    dlq = make_queue("dlq")
    arn = sqs_client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    policy = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": "1"}
    return make_queue("source", RedrivePolicy=json.dumps(policy)), dlq


def dead_letter(client: Any, source: str, dlq: str, tasks: range) -> None:
    """Send ``settle`` tasks to ``source`` and let SQS move them to ``dlq``: received once
    (the policy's maximum), released, and moved by the next receive."""
    Queue(url=source, sqs_client=client).send_tasks(_tasks(tasks))
    for _ in range(20):  # bounded; each message needs two receives
        client.receive_message(
            QueueUrl=source, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
        )
        if queue_counts(client, dlq)[0] == len(tasks):
            return
    raise AssertionError(f"not dead-lettered: dlq={queue_counts(client, dlq)}")


def _tasks(numbers: range) -> list[Any]:
    from sqsx import TaskMessage

    return [TaskMessage("settle", {"n": n}) for n in numbers]


def test_ls_shows_the_dead_letter_queue_its_depth_and_oldest_message(
    sqsx: Run, sqs_client: Any, pair: tuple[str, str]
) -> None:
    # Given three tasks dead-lettered from the source queue
    source, dlq = pair
    sent_at = time.time()
    dead_letter(sqs_client, source, dlq, range(3))

    # When ls runs on the source queue
    code, out, _ = sqsx("ls", source, "--json")

    # Then it names the DLQ, its depth and the age of the oldest (sent when we sent it:
    # a standard queue keeps a message's enqueue time when it is dead-lettered)
    assert code == 0
    report = json.loads(out)
    assert (report["dead_letter_queue_url"], report["max_receive_count"]) == (dlq, 1)
    assert (report["visible"], report["in_flight"], report["sampled"]) == (3, 0, 3)
    assert 0 <= report["oldest_age_seconds"] <= time.time() - sent_at + 2
    # And the sampled messages are visible again at once
    assert queue_counts(sqs_client, dlq) == (3, 0, 0)
    code, text, _ = sqsx("ls", source)
    assert code == 0 and f"dead-letter queue  {dlq} (after 1 receive)" in text
    assert "3 visible, 0 in flight, 0 delayed" in text and "oldest message     sent" in text


def test_peek_shows_messages_without_deleting_them(
    sqsx: Run, sqs_client: Any, pair: tuple[str, str]
) -> None:
    # Given two tasks in the DLQ, one with an error recorded by its producer
    source, dlq = pair
    Queue(url=dlq, sqs_client=sqs_client).send_tasks(_tasks(range(1)))
    sqs_client.send_message(
        QueueUrl=dlq,
        MessageBody="raw",
        MessageAttributes={"ErrorMessage": {"DataType": "String", "StringValue": "boom"}},
    )

    # When peek shows them as JSON, without bodies
    code, out, _ = sqsx("peek", source, "--json")

    # Then each row has its id, task, receive count, first error and size, and no body
    assert code == 0
    rows = sorted(json.loads(out), key=lambda row: row["task"])
    assert [(r["task"], r["first_error"], r["receive_count"]) for r in rows] == [
        ("-", "boom", 1),
        ("settle", None, 1),
    ]
    # (size as SQS counts it: body plus each attribute's name, type and value)
    assert rows[0]["size_bytes"] == len("raw") + len("ErrorMessage") + len("String") + 4
    assert all("body" not in row for row in rows)
    # And nothing was deleted; the next receive sees the peek's receive counted
    assert queue_counts(sqs_client, dlq) == (2, 0, 0)
    code, text, _ = sqsx("peek", source, "--body", "-n", "5")
    assert code == 0
    assert "invisible for a moment and counts a receive" in text
    assert "receives 2" in text and "body: raw" in text and "first error: boom" in text
    assert "2 messages shown, all visible again" in text
    assert queue_counts(sqs_client, dlq) == (2, 0, 0)


def test_replay_runs_the_handlers_and_deletes_only_what_succeeded(
    sqsx: Run, sqs_client: Any, pair: tuple[str, str]
) -> None:
    # Given six tasks in the DLQ: 2, 4 and 6 succeed, 5 raises NoRetry, 1 and 3 fail
    source, dlq = pair
    Queue(url=dlq, sqs_client=sqs_client).send_tasks(_tasks(range(1, 7)))
    dlq_app.RAN.clear()

    # When they are replayed through the module's handlers
    code, out, _ = sqsx("replay", "dlq_app:queue", "--queue-url", source, "--app-dir", "tests")

    # Then each ran once; the four whose outcome deletes are gone, the two failures are
    # back in the DLQ at once (exit 1: some are left)
    assert sorted(dlq_app.RAN) == [1, 2, 3, 4, 5, 6]
    assert code == 1
    assert "replayed 6: 3 succeeded, 1 NoRetry, 2 failed, 0 unprocessable" in out
    assert "4 deleted, 2 left in the dead-letter queue" in out
    assert "visible in the dead-letter queue again now" in out
    assert queue_counts(sqs_client, dlq) == (2, 0, 0)


def test_replay_needs_the_module_and_the_commands_refuse_a_queue_without_a_dlq(
    sqsx: Run, pair: tuple[str, str], make_queue: Callable[..., str]
) -> None:
    source, dlq = pair
    code, _, err = sqsx("replay", source)
    assert code == 2 and "replay runs the module's handlers: give MODULE:ATTR" in err

    # A queue with no RedrivePolicy is refused in one line, exit 2
    plain = make_queue("plain")
    code, _, err = sqsx("ls", plain)
    assert code == 2
    assert err.strip() == (
        f"sqsx dlq: error: {plain} has no RedrivePolicy, so it is not the source queue of "
        "any dead-letter queue (give the queue whose RedrivePolicy names the DLQ)"
    )
    # And given the DLQ itself, the refusal names its source
    code, _, err = sqsx("peek", dlq)
    assert code == 2 and f"it is the dead-letter queue of {source}: give that URL" in err


@pytest.mark.only_on("localstack", reason="moto lacks StartMessageMoveTask (moto #10265)")
def test_redrive_moves_the_messages_back_with_sqs_own_move_task(
    sqsx: Run, sqs_client: Any, pair: tuple[str, str]
) -> None:
    # Given three tasks dead-lettered from the source
    source, dlq = pair
    dead_letter(sqs_client, source, dlq, range(3))

    # When they are redriven, 10 per second, and followed until done
    code, out, err = sqsx("redrive", source, "--rate", "10")

    # Then SQS moved them back to the source queue
    assert code == 0, err
    assert f"redrive started: {dlq} -> the queue each message came from" in out
    assert "completed: moved 3 of 3" in out
    assert wait_until(lambda: queue_counts(sqs_client, source)[0] == 3)
    assert queue_counts(sqs_client, dlq) == (0, 0, 0)


@pytest.mark.only_on("localstack", reason="moto lacks StartMessageMoveTask (moto #10265)")
def test_redrive_cancel_stops_a_running_move(
    sqsx: Run, sqs_client: Any, pair: tuple[str, str]
) -> None:
    # Given a slow redrive (1 message per second) of six messages, started without waiting
    source, dlq = pair
    dead_letter(sqs_client, source, dlq, range(6))
    code, _, err = sqsx("redrive", source, "--rate", "1", "--no-wait")
    assert code == 0, err

    # When it is cancelled
    code, out, err = sqsx("redrive", source, "--cancel")

    # Then SQS stops it before every message moved, and a second cancel has nothing to stop
    assert code == 0, err
    assert "cancelling the redrive" in out
    arn = sqs_client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    tasks = lambda: sqs_client.list_message_move_tasks(  # noqa: E731
        SourceArn=arn["Attributes"]["QueueArn"]
    )["Results"]
    assert wait_until(lambda: tasks()[0]["Status"] == "CANCELLED")
    assert tasks()[0]["ApproximateNumberOfMessagesMoved"] < 6
    code, _, err = sqsx("redrive", source, "--cancel")
    assert code == 1 and "no redrive is running" in err


@pytest.mark.only_on("moto", reason="the refusal of a server without StartMessageMoveTask")
def test_redrive_on_a_server_without_move_tasks_fails_in_one_line(
    sqsx: Run, sqs_client: Any, pair: tuple[str, str]
) -> None:
    source, dlq = pair
    Queue(url=dlq, sqs_client=sqs_client).send_tasks(_tasks(range(2)))
    code, _, err = sqsx("redrive", source)
    assert code == 1
    assert err.startswith("sqsx dlq: error: the server cannot start a redrive")
    assert len(err.strip().splitlines()) == 1
    assert queue_counts(sqs_client, dlq) == (2, 0, 0)
