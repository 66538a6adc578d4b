"""Fixtures: real SQS-compatible servers on 127.0.0.1 and boto3 clients for them.

The servers (moto and LocalStack) and the ``[moto]``/``[localstack]`` parametrisation come
from the ``servers`` plugin (``tests/servers.py``); ``deviates_on`` and ``only_on`` are
described there.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config

from sqsx.sqs import read_depth

pytest_plugins = ["servers"]  # sqs_server, endpoint_url, s3_endpoint_url, local_sqs, ...

REGION = "us-east-1"


def make_client(endpoint_url: str, service: str = "sqs", **config: Any) -> Any:
    """A boto3 client for the local server (SQS, or another service it serves: S3)."""
    factory: Any = boto3.client  # typed per literal service name
    return factory(
        service,
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(max_pool_connections=50, **config),
    )


@pytest.fixture(scope="module")
def offline_client() -> Iterator[Any]:
    """A boto3 SQS client for a port nothing listens on: for code that must make no SQS
    call (the core's ``process``, queue validation); the module fails if any was made."""
    client = make_client("http://127.0.0.1:9")
    counter = CallCounter(client)
    yield client
    assert sum(counter.counts.values()) == 0, f"SQS was called: {counter.counts}"


@pytest.fixture
def sqs_client(endpoint_url: str) -> Any:
    return make_client(endpoint_url)


@pytest.fixture
def make_queue(sqs_client: Any) -> Callable[..., str]:
    """Create a queue with a unique name; keyword arguments are queue attributes."""

    def create(prefix: str = "q", fifo: bool = False, **attributes: Any) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}" + (".fifo" if fifo else "")
        attrs = {k: str(v) for k, v in attributes.items()}
        if fifo:
            attrs["FifoQueue"] = "true"
        return str(sqs_client.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"])

    return create


@pytest.fixture
def queue_url(make_queue: Callable[..., str]) -> str:
    return make_queue()


def make_s3_client(endpoint_url: str, **config: Any) -> Any:
    """A boto3 S3 client for the local server (moto serves S3 on the same port)."""
    return make_client(endpoint_url, "s3", **config)


@pytest.fixture
def s3_client(endpoint_url: str) -> Any:
    return make_s3_client(endpoint_url)


@pytest.fixture
def bucket(s3_client: Any) -> str:
    """A new, empty S3 bucket on the local server."""
    name = f"b-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def extended_session() -> Iterator[type]:
    """``SQSExtendedClientSession``, without the global patch of boto3 that importing the
    package makes (it replaces ``boto3.Session`` for the whole process): restored at once."""
    saved = (boto3.Session, boto3.session.Session, boto3.DEFAULT_SESSION)
    try:
        from sqs_extended_client.client import SQSExtendedClientSession
    finally:
        boto3.Session, boto3.session.Session, boto3.DEFAULT_SESSION = saved
    yield SQSExtendedClientSession


@dataclass(frozen=True)
class Stack:
    """One test's local SQS queue and S3 bucket, with plain boto3 clients for them and AWS's
    Python Extended Client on demand (the ``stack`` fixture)."""

    session_class: type
    endpoint_url: str
    sqs: Any
    s3: Any
    bucket: str
    url: str

    def extended(self, **flags: bool) -> Any:
        """An Extended Client SQS client for the local server, offloading to the bucket;
        ``flags`` set its properties (``use_legacy_attribute``, ``delete_payload_from_s3``)."""
        session = self.session_class(
            aws_access_key_id="x", aws_secret_access_key="x", region_name=REGION
        )
        client = session.client("sqs", endpoint_url=self.endpoint_url)
        client.s3_client = self.s3  # the package's own S3 client would talk to AWS
        client.large_payload_support = self.bucket
        for name, value in flags.items():
            setattr(client, name, value)
        return client

    def keys(self) -> list[str]:
        """The keys in the bucket."""
        listing = self.s3.list_objects_v2(Bucket=self.bucket)
        return [item["Key"] for item in listing.get("Contents", [])]


@pytest.fixture
def stack(
    extended_session: type,
    endpoint_url: str,
    sqs_client: Any,
    s3_client: Any,
    bucket: str,
    queue_url: str,
) -> Stack:
    return Stack(extended_session, endpoint_url, sqs_client, s3_client, bucket, queue_url)


class CallCounter:
    """Counts SQS API calls made by one client, by operation name (botocore event hook)."""

    def __init__(self, client: Any) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        client.meta.events.register("before-call.sqs.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.counts[model.name] += 1


@pytest.fixture
def call_counter(sqs_client: Any) -> CallCounter:
    return CallCounter(sqs_client)


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05
) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def queue_counts(client: Any, url: str) -> tuple[int, int, int]:
    """(visible, in flight, delayed) for ``url``."""
    depth = read_depth(client, url)
    return depth.visible, depth.in_flight, depth.delayed


class Consumer:
    """Runs ``queue.consume_messages`` in a thread; ``stop()`` asks it to exit and joins."""

    def __init__(self, queue: Any, **options: Any) -> None:
        options.setdefault("enable_signal_to_exit_gracefully", False)
        options.setdefault("wait_seconds", 0)
        options.setdefault("polling_wait_seconds", 1)
        self.queue = queue
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(options,), daemon=True)
        self.thread.start()

    def _run(self, options: dict[str, Any]) -> None:
        try:
            self.queue.consume_messages(**options)
        except BaseException as err:
            self.error = err

    def stop(self, timeout: float = 15.0) -> None:
        self.queue.exit_gracefully()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "consumer did not stop in time"
        if self.error is not None:
            raise self.error


class ScriptRun:
    """A Python script in a subprocess whose output is read line by line as it comes.

    ``wait_for(text)`` blocks until a line of stdout contains ``text`` (bounded by a
    timeout); ``finish()`` waits for the exit and returns the exit code. The child runs
    unbuffered so that prints are seen at once.
    """

    def __init__(
        self,
        args: list[str],
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        import queue as queue_module
        import subprocess

        full_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            args,
            cwd=cwd,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue_module.Queue[str | None] = queue_module.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, is_stdout: bool) -> None:
        for line in stream:
            (self.stdout if is_stdout else self.stderr).append(line)
            if is_stdout:
                self._lines.put(line)
        if is_stdout:
            self._lines.put(None)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """The first new stdout line containing ``text``; fails after ``timeout`` seconds."""
        import queue as queue_module

        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            line: str | None = ""
            if remaining > 0:
                try:
                    line = self._lines.get(timeout=remaining)
                except queue_module.Empty:
                    continue
            if line is None or remaining <= 0:  # the child exited, or time is up
                self.kill()
                raise AssertionError(
                    f"{text!r} not printed; stdout={''.join(self.stdout)!r} "
                    f"stderr={''.join(self.stderr)[-3000:]!r}"
                )
            if text in line:
                return line

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def finish(self, timeout: float = 30.0) -> int:
        """Wait for the exit (killing the child after ``timeout`` s); the exit code."""
        import subprocess

        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"script did not exit within {timeout}s; stderr={''.join(self.stderr)[-3000:]!r}"
            ) from None
        for reader in self._readers:
            reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    @property
    def output(self) -> str:
        """Everything printed so far on stdout."""
        return "".join(self.stdout)

    @property
    def errors(self) -> str:
        """Everything printed so far on stderr (log lines)."""
        return "".join(self.stderr)


def lambda_event(client: Any, url: str, count: int, timeout: float = 10.0) -> dict[str, Any]:
    """Receive ``count`` messages from ``url`` and wrap them as the SQS event Lambda would
    deliver (records in the order received; raises if fewer arrive within ``timeout`` s)."""
    from sqsx_lambda.records import to_lambda

    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < deadline:
        messages += client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, count - len(messages)),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=1,
        ).get("Messages", [])
    assert len(messages) == count, f"received {len(messages)} of {count} messages"
    return {"Records": [to_lambda(message, event_source_arn=arn) for message in messages]}


def fail_first_call(client: Any, operation: str, code: str, status: int) -> list[str]:
    """Make ``client``'s first ``operation`` call fail with SQS error ``code`` (HTTP
    ``status``), through a botocore hook; returns the list of calls seen, one per call."""
    from botocore.exceptions import ClientError

    calls: list[str] = []

    def hook(**_: Any) -> None:
        calls.append(operation)
        if len(calls) == 1:
            raise ClientError(
                {
                    "Error": {"Code": code, "Message": "injected by the test"},
                    "ResponseMetadata": {"HTTPStatusCode": status},
                },
                operation,
            )

    client.meta.events.register(f"before-call.sqs.{operation}", hook)
    return calls


@pytest.fixture
def workers(tmp_path: Any) -> Iterator[Any]:
    """Worker subprocesses for the fault suite (``tests/fault/faultkit.Workers``), all
    stopped at the end of the test."""
    from faultkit import Workers  # on sys.path when tests/fault is collected

    started = Workers(tmp_path)
    yield started
    started.close()


@pytest.fixture
def proxy(endpoint_url: str) -> Iterator[Any]:
    """A fault-injecting TCP proxy (``tests/fault/proxy.FaultProxy``) in front of this test's
    server, closed at the end of the test."""
    from urllib.parse import urlsplit

    from proxy import FaultProxy  # on sys.path when tests/fault is collected

    port = urlsplit(endpoint_url).port
    assert port is not None, endpoint_url
    server = FaultProxy(port)
    yield server
    server.close()


@pytest.fixture
def handlers() -> Iterator[Any]:
    """Builds ``LambdaHandler`` objects (``handlers(queue, **options)``) and stops their
    thread pools after the test."""
    from sqsx_lambda import LambdaHandler

    made: list[LambdaHandler] = []

    def build(queue: Any, **options: Any) -> LambdaHandler:
        made.append(LambdaHandler(queue, **options))
        return made[-1]

    yield build
    for handler in made:
        handler.close()


class Overlap:
    """Counts coroutines running at once, and the threads they ran in."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.threads: set[int] = set()
        self.finished = 0
        self._lock = threading.Lock()

    async def run(self, seconds: float) -> None:
        """``await asyncio.sleep(seconds)``, counted."""
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self.threads.add(threading.get_ident())
        try:
            await asyncio.sleep(seconds)
        finally:
            with self._lock:
                self.now -= 1
                self.finished += 1


class FifoGroups:
    """Two FIFO message groups, ``a`` and ``b``, of ``count`` messages each on a RawQueue
    whose ``async def`` handler records, per group, the order it ran them in."""

    def __init__(self, client: Any, url: str, count: int) -> None:
        from sqsx import RawQueue

        self.order: dict[str, list[int]] = {"a": [], "b": []}
        self.overlap = Overlap()
        self.queue = RawQueue(url, self._handle, client)
        for n in range(count):
            for group in ("a", "b"):
                self.queue.send_message(f"{group}:{n}", group_id=group)

    async def _handle(self, queue_url: str, sqs_message: dict[str, Any]) -> None:
        group, n = sqs_message["Body"].split(":")
        await self.overlap.run(0.05)
        self.order[group].append(int(n))

    def ran(self) -> int:
        return len(self.order["a"]) + len(self.order["b"])
