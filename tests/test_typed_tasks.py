"""Typed task handlers: kwargs validated by pydantic before the handler runs, and at send."""

from __future__ import annotations

import datetime
import logging
from decimal import Decimal
from typing import Any

import pytest
from conftest import Consumer, queue_counts, wait_until
from pydantic import BaseModel

from sqsx import Queue
from sqsx.exceptions import TaskArgumentsError


class Order(BaseModel):
    id: int
    amount: Decimal
    lines: list[str]


def test_typed_handler_gets_converted_values(sqs_client: Any, queue_url: str) -> None:
    # Given a handler taking a pydantic model and a date, and a task sent with those objects
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    got: list[tuple[Order, datetime.date]] = []

    def charge(context: dict[str, Any], order: Order, on: datetime.date) -> None:
        got.append((order, on))

    queue.add_task_handler("charge", charge)
    order = Order(id=7, amount=Decimal("9.50"), lines=["a", "b"])
    queue.send_task("charge", {"order": order, "on": datetime.date(2026, 11, 27)})

    # When it is consumed
    consumer = Consumer(queue)
    assert wait_until(lambda: len(got) == 1)
    consumer.stop()

    # Then the handler received real objects, equal to what was sent
    assert got == [(order, datetime.date(2026, 11, 27))]


def test_invalid_kwargs_are_unprocessable_and_named(
    sqs_client: Any, queue_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a typed handler and a task whose kwargs break its types
    queue = Queue(url=queue_url, sqs_client=sqs_client, poison_policy="delete")
    ran: list[int] = []
    queue.add_task_handler("count", lambda context, n: ran.append(n))

    def typed(context: dict[str, Any], n: int, when: datetime.date) -> None:
        ran.append(n)

    queue.add_task_handler("typed", typed)
    sent = queue.add_task("typed", n="many", when="2026-02-30")

    # When it is consumed
    caplog.set_level(logging.WARNING, logger="sqsx")
    consumer = Consumer(queue)
    assert wait_until(lambda: queue.stats().unprocessable == 1)
    consumer.stop()

    # Then the handler never ran, the message was deleted (poison_policy="delete") and the
    # ERROR line names the task, the message id and both fields
    assert ran == []
    assert queue_counts(sqs_client, queue_url) == (0, 0, 0)
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert sent["MessageId"] in line and "'typed'" in line
    assert "n:" in line and "when:" in line
    assert "many" not in line  # the offending values are not logged


def test_validate_on_send_refuses_bad_kwargs_at_the_door(sqs_client: Any, queue_url: str) -> None:
    queue = Queue(url=queue_url, sqs_client=sqs_client, validate_on_send=True)

    def typed(context: dict[str, Any], n: int) -> None: ...

    queue.add_task_handler("typed", typed)
    with pytest.raises(TaskArgumentsError, match="n: Input should be a valid integer"):
        queue.add_task("typed", n="x")
    with pytest.raises(TaskArgumentsError, match="unexpected keyword argument 'm'"):
        queue.add_task("typed", n=1, m=2)
    queue.add_task("typed", n=1)
    assert queue_counts(sqs_client, queue_url)[0] == 1
