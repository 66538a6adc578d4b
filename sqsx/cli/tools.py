"""``sqsx local``, ``sqsx send`` and ``sqsx stats``: a local SQS, and a queue's two ends."""

from __future__ import annotations

import argparse
import json
import signal
import time
import uuid
from collections.abc import Sequence
from errno import EADDRINUSE
from typing import Any

from botocore.exceptions import ClientError

from sqsx.cli.deadletter import find_dead_letter_queue
from sqsx.cli.target import (
    CommandFailed,
    UsageError,
    load_queue,
    local_endpoint,
    make_client,
    region_of,
    with_overrides,
)
from sqsx.cli.worker import STOP_SIGNALS, configure_logging, say
from sqsx.exceptions import TaskArgumentsError
from sqsx.queue import Queue
from sqsx.sending import TaskMessage
from sqsx.signature import signature_of
from sqsx.sqs import error_code, read_depth

__all__ = ["create_queues", "run_local", "run_send", "run_stats"]


# -- local ----------------------------------------------------------------------------------


def run_local(args: argparse.Namespace) -> int:
    """Run ``sqsx local``: serve until SIGINT/SIGTERM; returns the exit code.

    Raises:
        CommandFailed: moto is not installed, or the port is taken.
    """
    from sqsx.local import DEFAULT_ACCOUNT_ID, LocalSqs, LocalSqsUnavailable

    server = LocalSqs(port=args.port)
    try:
        server.start()
    except LocalSqsUnavailable as err:
        raise CommandFailed(f"{err} (the 'local' extra)") from err
    except OSError as err:
        hint = " (another local SQS? --port 0 picks a free port)" if err.errno == EADDRINUSE else ""
        raise CommandFailed(
            f"cannot listen on 127.0.0.1:{args.port}: {err.strerror}{hint}"
        ) from err
    requests: list[int] = []
    previous = {s: signal.signal(s, lambda n, f: requests.append(n)) for s in STOP_SIGNALS}
    try:
        client = make_client(server.endpoint_url)
        print(f"sqsx local: SQS on {server.endpoint_url} (account {DEFAULT_ACCOUNT_ID})")
        queues = create_queues(
            client,
            args.queue,
            args.with_dlq,
            args.max_receives,
            content_based_deduplication=not args.no_content_based_deduplication,
        )
        for name, url, note in queues:
            print(f"  {name}: {url}{note}")
        # moto's server answers every service: S3 is on the same port (path-style URLs).
        print(f"sqsx local: S3 on {server.endpoint_url} (path-style)")
        s3 = make_client(server.endpoint_url, service="s3")
        for bucket in args.bucket:
            try:
                s3.create_bucket(Bucket=bucket)
            except ClientError as err:
                raise CommandFailed(f"cannot create bucket {bucket!r}: {error_code(err)}") from err
            print(f"  bucket {bucket}: {server.endpoint_url}/{bucket}")
        print(f"export SQSX_ENDPOINT_URL={server.endpoint_url}")
        print("Press Ctrl-C to stop.", flush=True)
        # A signal handler must not take a lock (Event.set does): it appends, we poll.
        while not requests:
            time.sleep(0.1)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        server.stop()
    say("sqsx local: stopped")
    return 0


def create_queues(
    client: Any,
    names: Sequence[str],
    with_dlq: bool,
    max_receives: int,
    *,
    content_based_deduplication: bool = True,
) -> list[tuple[str, str, str]]:
    """Create the queues ``names`` (``.fifo`` names as FIFO queues, with content-based
    deduplication unless ``content_based_deduplication`` is false) and, with ``with_dlq``,
    a ``NAME-dlq`` dead-letter queue for each that takes messages received ``max_receives``
    times. Returns (name, URL, note) for every queue created."""
    created = []
    for name in names:
        fifo = name.endswith(".fifo")
        attributes = {"FifoQueue": "true"} if fifo else {}
        if fifo and content_based_deduplication:
            attributes["ContentBasedDeduplication"] = "true"
        dead_letter = []
        note = ""
        if with_dlq:
            dlq_name = f"{name[:-5]}-dlq.fifo" if fifo else f"{name}-dlq"
            dlq_url = client.create_queue(QueueName=dlq_name, Attributes=attributes)["QueueUrl"]
            arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
            policy = {
                "deadLetterTargetArn": arn["Attributes"]["QueueArn"],
                "maxReceiveCount": str(max_receives),
            }
            attributes = {**attributes, "RedrivePolicy": json.dumps(policy)}
            dead_letter = [(dlq_name, dlq_url, f"  (dead-letter queue of {name})")]
            note = f"  (dead-lettered after {max_receives} receives)"
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        created += [(name, url, note), *dead_letter]
    return created


# -- send -------------------------------------------------------------------------------------


def run_send(args: argparse.Namespace) -> int:
    """Run ``sqsx send``: ``--count`` copies of a task through ``Queue.send_tasks``
    (SendMessageBatch, ten entries and 1 MiB per request); returns the exit code.

    Raises:
        UsageError: bad ``MODULE:ATTR``, bad ``--kwargs``, a RawQueue, a FIFO queue without
            ``--group-id``, a task too large or whose kwargs do not serialise.
        CommandFailed: SQS refused some of the messages (how many, and why, is said).
    """
    configure_logging(args.log_level)
    try:
        kwargs = json.loads(args.kwargs)
    except json.JSONDecodeError as err:
        raise UsageError(f"--kwargs is not valid JSON: {err}") from err
    if not isinstance(kwargs, dict):
        raise UsageError(f"--kwargs must be a JSON object, got a {type(kwargs).__name__}")
    queue = with_overrides(
        load_queue(args.target, args.app_dir),
        queue_url=args.queue_url,
        endpoint_url=args.endpoint_url,
    )
    if not isinstance(queue, Queue):
        raise UsageError(f"{args.target} is a RawQueue: sqsx send sends tasks to a Queue")
    fifo = queue.url.endswith(".fifo")
    if fifo and not args.group_id:
        raise UsageError(f"{queue.url} is a FIFO queue: give --group-id")
    if not args.no_check:
        _check_task(queue, args.target, args.task_name, kwargs)
    tasks = [
        TaskMessage(
            args.task_name,
            kwargs,
            group_id=args.group_id,
            deduplication_id=uuid.uuid4().hex if fifo else None,
        )
        for _ in range(args.count)
    ]
    try:
        results = queue.send_tasks(tasks)
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from err
    failed = [result for result in results if not result.ok]
    if failed:
        raise CommandFailed(
            f"{len(failed)} of {len(results)} tasks not sent: {failed[0].error} "
            f"(the other {len(results) - len(failed)} were sent)"
        )
    print(f"sent {len(results):,} x {args.task_name} to {queue.url}")
    return 0


def _check_task(queue: Queue, target: str, task_name: str, kwargs: dict[str, Any]) -> None:
    """Refuse a task the module's queue has no handler for, or kwargs that do not fit it.

    Raises:
        UsageError: one line naming the task (and the registered ones) or the fields.
    """
    handler = queue.dispatcher.registry.get(task_name)  # type: ignore[attr-defined]
    if handler is None:
        known = ", ".join(queue.task_names) or "none"
        raise UsageError(
            f"{target} has no handler for task {task_name!r} (registered: {known}); "
            "--no-check sends it anyway"
        )
    try:
        signature_of(handler).bind(task_name, kwargs)
    except TaskArgumentsError as err:
        raise UsageError(f"{err}; --no-check sends it anyway") from err


# -- stats ------------------------------------------------------------------------------------


def run_stats(args: argparse.Namespace) -> int:
    """Run ``sqsx stats``: print the queue's depth and its dead-letter queue's.

    Raises:
        UsageError: no queue URL given.
        botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError: SQS refused
            or could not be reached.
    """
    url = args.queue_url
    if not url:
        raise UsageError("give QUEUE_URL (or set SQSX_QUEUE_URL)")
    # A URL on localhost is its own endpoint (sqsx local, ElasticMQ): no region needed.
    client = make_client(args.endpoint_url or local_endpoint(url), region=region_of(url))
    report: dict[str, Any] = {"queue_url": url, **_depth_of(client, url)}
    report["dead_letter_queue"] = _dead_letter_queue(client, url)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"queue      {url}")
    print(f"visible    {report['visible']:,}")
    print(f"in flight  {report['in_flight']:,}")
    print(f"delayed    {report['delayed']:,}")
    dlq = report["dead_letter_queue"]
    if dlq:
        print(
            f"dead-letter queue {dlq['queue_url']} (after {dlq['max_receive_count']} receives): "
            f"{dlq['visible']:,} visible, {dlq['in_flight']:,} in flight, "
            f"{dlq['delayed']:,} delayed"
        )
    return 0


def _dead_letter_queue(client: Any, url: str) -> dict[str, Any] | None:
    dlq = find_dead_letter_queue(client, url)
    if dlq is None:
        return None
    return {
        "queue_url": dlq.url,
        "max_receive_count": dlq.max_receive_count,
        **_depth_of(client, dlq.url),
    }


def _depth_of(client: Any, url: str) -> dict[str, int]:
    depth = read_depth(client, url)
    return {"visible": depth.visible, "in_flight": depth.in_flight, "delayed": depth.delayed}
