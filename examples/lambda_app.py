"""The example Lambda app of template.yaml: the same sqsx handlers a polling worker runs.

Three entrypoints, one per queue of the template:

- ``handler``: tasks (``Queue``), sent with ``queue.add_task("send_email", to=..., ...)``;
- ``raw_handler``: plain JSON messages from another producer (``RawQueue``);
- ``fifo_handler``: ledger entries on a FIFO queue, applied in order per account.

Queue URLs come from the environment (template.yaml sets them); the defaults point at a
local server (``sqsx local``, port 9324). The sample events in ``events/`` are made for
these handlers::

    python -m sqsx_lambda invoke events/tasks-mixed.json --handler examples.lambda_app:handler

Every log line is JSON (Powertools' Logger) with the request id and the message id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config

from sqsx import NoRetry, Queue, RawQueue, Retry
from sqsx_lambda import LambdaHandler

_LOCAL = "http://127.0.0.1:9324/000000000000/"

logger = Logger(service="sqsx-example")
# Created once per execution environment and shared by every invocation (and thread).
# AWS_ENDPOINT_URL_SQS, when set, points it at a local server.
sqs_client = boto3.client("sqs", config=Config(max_pool_connections=16))


# -- tasks ----------------------------------------------------------------------------------

tasks = Queue(
    url=os.environ.get("TASKS_QUEUE_URL", _LOCAL + "sqsx-example-tasks"),
    sqs_client=sqs_client,
    min_backoff_seconds=10,
    max_backoff_seconds=600,
)


def send_email(context: dict[str, Any], to: str, subject: str) -> None:
    """Succeeds: the message is deleted."""
    logger.info("sending an email", extra={"subject": subject})


def charge(context: dict[str, Any], order_id: str, amount_cents: int) -> None:
    """A refusal is final (``NoRetry``: deleted); a busy provider is retried on its own
    schedule (``Retry``: 5 s, then 10 s, 20 s... up to 60 s)."""
    if amount_cents <= 0:
        raise NoRetry()
    if order_id.startswith("busy-"):
        raise Retry(min_backoff_seconds=5, max_backoff_seconds=60)
    logger.info("charged", extra={"order_id": order_id})


def sync_inventory(context: dict[str, Any], sku: str) -> None:
    """Any exception retries the message with the queue's backoff (10 s, 20 s, ...)."""
    if sku == "unreachable":
        raise ConnectionError("inventory service did not answer")


tasks.add_task_handler("send_email", send_email)
tasks.add_task_handler("charge", charge)
tasks.add_task_handler("sync_inventory", sync_inventory)

#: The tasks function's entrypoint (template.yaml: ``lambda_app.handler``).
handler = LambdaHandler(tasks, max_threads=8, logger=logger)


# -- plain messages from another producer -----------------------------------------------------


def on_order_event(queue_url: str, sqs_message: Mapping[str, Any]) -> None:
    """JSON events ``{"type": ..., "order_id": ...}``; unknown types are dropped."""
    event = json.loads(sqs_message["Body"])  # not JSON: raises, so retried, then dead-lettered
    if event.get("type") not in {"order_created", "order_paid"}:
        raise NoRetry()
    logger.info("order event", extra={"type": event["type"], "order_id": event.get("order_id")})


raw_events = RawQueue(
    url=os.environ.get("EVENTS_QUEUE_URL", _LOCAL + "sqsx-example-events"),
    message_handler_function=on_order_event,
    sqs_client=sqs_client,
    min_backoff_seconds=10,
)

#: The events function's entrypoint (template.yaml: ``lambda_app.raw_handler``).
raw_handler = LambdaHandler(raw_events, max_threads=8, logger=logger)


# -- FIFO: ledger entries applied in order per account ---------------------------------------

ledger = Queue(
    url=os.environ.get("LEDGER_QUEUE_URL", _LOCAL + "sqsx-example-ledger.fifo"),
    sqs_client=sqs_client,
    min_backoff_seconds=5,
)


def apply_entry(context: dict[str, Any], account: str, amount_cents: int) -> None:
    """An entry for a frozen account fails; the account's later entries wait behind it."""
    if account.startswith("frozen-"):
        raise RuntimeError("account is frozen")
    logger.info("entry applied", extra={"account": account, "amount_cents": amount_cents})


ledger.add_task_handler("apply_entry", apply_entry)

#: The ledger function's entrypoint (template.yaml: ``lambda_app.fifo_handler``).
fifo_handler = LambdaHandler(ledger, max_threads=8, logger=logger)
