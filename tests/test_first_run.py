"""A new user's first runs, in-process against the local SQS: credentials that cannot work
end a run, an unreachable endpoint is named, FIFO sends need no deduplication id, the local
server runs on any moto 5 and serves every region, the drain bar fits 80 columns."""

from __future__ import annotations

import errno
import io
import logging
import re
import socket
import sys
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from conftest import REGION, Consumer, fail_first_call, make_client, queue_counts, wait_until

from sqsx import Queue, QueueUnavailableError, RawQueue, StatsSnapshot, TaskMessage
from sqsx.cli.progress import DrainBar, format_bar_text, format_eta, format_summary
from sqsx.cli.tools import create_queues
from sqsx.local import LocalSqs, LocalSqsUnavailable
from sqsx.sending import content_deduplication_id
from sqsx.sqs import describe_error, is_permanent

# -- credentials and connection errors ---------------------------------------------------------


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials anywhere, and no instance metadata lookups (127.0.0.1 only)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)


def test_no_credentials_end_the_run_instead_of_retrying_forever(
    no_credentials: None, endpoint_url: str, queue_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a client with no credentials (not in --drain mode, where it already stopped)
    client = boto3.Session().client("sqs", endpoint_url=endpoint_url, region_name=REGION)
    queue = Queue(url=queue_url, sqs_client=client)

    # When it consumes
    with caplog.at_level(logging.WARNING, logger="sqsx"):
        with pytest.raises(QueueUnavailableError) as caught:
            queue.consume_messages(enable_signal_to_exit_gracefully=False, polling_wait_seconds=1)

    # Then the run ends with the cause and the fix, and no misleading visibility hint
    assert "NoCredentialsError: no AWS credentials found; set AWS_PROFILE" in str(caught.value)
    assert "visibility_timeout" not in caplog.text
    assert "retrying" not in caplog.text


@pytest.mark.parametrize(
    "code",
    [
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
    ],
)
def test_refused_credentials_end_the_run(
    sqs_client: Any, queue_url: str, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given SQS refusing the credentials on the first receive
    calls = fail_first_call(sqs_client, "ReceiveMessage", code, 403)
    queue = Queue(url=queue_url, sqs_client=sqs_client)

    # When the queue is consumed (the visibility timeout given: no GetQueueAttributes)
    with caplog.at_level(logging.ERROR, logger="sqsx"):
        with pytest.raises(QueueUnavailableError, match=f"{code}: SQS refused the credentials"):
            queue.consume_messages(
                enable_signal_to_exit_gracefully=False,
                polling_wait_seconds=1,
                visibility_timeout=30,
            )

    # Then it stopped after that one call, saying what to do
    assert calls == ["ReceiveMessage"]
    assert "renew them" in caplog.text


def test_an_unreachable_endpoint_is_retried_and_named(caplog: pytest.LogCaptureFixture) -> None:
    # Given an endpoint where nothing listens
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    client = make_client(endpoint, retries={"max_attempts": 1}, connect_timeout=1)
    queue = RawQueue(f"{endpoint}/000000000000/q", lambda url, message: None, client)

    # When it is consumed for a while
    with caplog.at_level(logging.WARNING, logger="sqsx"):
        consumer = Consumer(queue, visibility_timeout=30)
        try:
            logged = wait_until(lambda: "failure 2 in a row" in caplog.text, timeout=30)
        finally:
            consumer.stop()

    # Then it kept retrying, and each line says which endpoint it could not reach
    assert logged, caplog.text
    assert f"EndpointConnectionError: cannot reach {endpoint}" in caplog.text


def test_errors_are_described_by_kind() -> None:
    from botocore.exceptions import ClientError, NoCredentialsError

    def client_error(code: str, message: str = "") -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": message}}, "ReceiveMessage")

    assert is_permanent(NoCredentialsError())
    assert is_permanent(client_error("ExpiredToken"))
    assert not is_permanent(client_error("ThrottlingException"))
    denied = describe_error(client_error("AccessDenied", "not authorized to sqs:ReceiveMessage"))
    assert denied == (
        "AccessDenied: not authorized to sqs:ReceiveMessage; grant the role the SQS actions "
        "it needs"
    )
    assert describe_error(client_error("InternalError", "oops")) == "InternalError: oops"


# -- FIFO queues -----------------------------------------------------------------------------


def test_fifo_sends_without_a_deduplication_id_work_on_any_fifo_queue(
    make_queue: Callable[..., str], sqs_client: Any
) -> None:
    # Given a FIFO queue WITHOUT content-based deduplication
    url = make_queue("orders", fifo=True)
    orders = Queue(url=url, sqs_client=sqs_client)

    # When tasks are sent without a deduplication id: one twice, one with another task
    # name, one in another group, two with explicit ids
    orders.send_task("apply", {"order_id": 7}, group_id="order-7")
    orders.send_task("apply", {"order_id": 7}, group_id="order-7")  # a duplicate
    orders.send_task("cancel", {"order_id": 7}, group_id="order-7")
    orders.send_task("apply", {"order_id": 7}, group_id="order-8")
    results = orders.send_tasks(
        TaskMessage("apply", {"order_id": 7}, group_id="order-7", deduplication_id=f"x{n}")
        for n in range(2)
    )

    # Then SQS took them all and deduplicated only the repeated one
    assert all(r.ok for r in results)
    assert queue_counts(sqs_client, url) == (5, 0, 0)


def test_the_content_deduplication_id_covers_body_attributes_and_group() -> None:
    attributes = {"TaskName": {"DataType": "String", "StringValue": "apply"}}
    first = content_deduplication_id("body", attributes, "g")
    assert len(first) == 64
    assert int(first, 16) >= 0
    assert first == content_deduplication_id("body", dict(attributes), "g")
    assert first != content_deduplication_id("body!", attributes, "g")
    assert first != content_deduplication_id("body", attributes, "h")
    assert first != content_deduplication_id("body", {}, "g")
    binary = {"Blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}}
    assert content_deduplication_id("body", binary, "g") != first


@pytest.mark.parametrize(("content_based", "expected"), [(True, "true"), (False, "false")])
def test_sqsx_local_makes_fifo_queues_with_content_based_deduplication(
    sqs_client: Any, content_based: bool, expected: str
) -> None:
    name = f"cbd-{expected}.fifo"
    created = create_queues(sqs_client, [name], True, 3, content_based_deduplication=content_based)
    for _, url, _ in created:
        attributes = sqs_client.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ContentBasedDeduplication", "FifoQueue"]
        )["Attributes"]
        assert attributes == {"ContentBasedDeduplication": expected, "FifoQueue": "true"}


# -- the local server ------------------------------------------------------------------------


def test_the_local_server_keeps_one_set_of_queues_for_every_region(local_sqs: LocalSqs) -> None:
    # Given a queue created by a client signing for eu-west-1
    def client(region: str) -> Any:
        return boto3.client(
            "sqs",
            endpoint_url=local_sqs.endpoint_url,
            region_name=region,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"max_attempts": 1}),
        )

    url = client("eu-west-1").create_queue(QueueName="every-region")["QueueUrl"]
    client("eu-west-1").send_message(QueueUrl=url, MessageBody="hello")

    # Then clients signing for any other region, or ElasticMQ's "elasticmq", see it too
    for region in ("us-east-1", "ap-southeast-2", "elasticmq"):
        other = client(region)
        assert url in other.list_queues(QueueNamePrefix="every-region")["QueueUrls"]
        depth = other.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert depth["ApproximateNumberOfMessages"] == "1"


def test_the_local_server_runs_without_motos_request_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a moto without MotoRequestHandler (5.0 to 5.2.4 have none)
    from moto.moto_server import werkzeug_app

    monkeypatch.delattr(werkzeug_app, "MotoRequestHandler", raising=False)

    # Then the server still starts and serves SQS
    with LocalSqs(port=0) as server:
        client = make_client(server.endpoint_url)
        url = client.create_queue(QueueName="old-moto")["QueueUrl"]
        client.send_message(QueueUrl=url, MessageBody="x")
        assert queue_counts(client, url) == (1, 0, 0)


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        pytest.param(
            {"moto": None}, "moto, which is not installed: pip install 'sqsx[local]'", id="missing"
        ),
        pytest.param(
            {"moto.moto_server": None},
            "is installed without its server",
            id="no-server-extra",
        ),
    ],
)
def test_a_missing_moto_and_a_moto_without_server_say_so(
    monkeypatch: pytest.MonkeyPatch, broken: dict[str, None], message: str
) -> None:
    for module, value in broken.items():
        monkeypatch.setitem(sys.modules, module, value)
    with pytest.raises(LocalSqsUnavailable, match=re.escape(message)):
        LocalSqs(port=0).start()


def test_a_moto_too_old_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto

    monkeypatch.setattr(moto, "__version__", "4.2.14")
    with pytest.raises(LocalSqsUnavailable) as caught:
        LocalSqs(port=0).start()
    assert "moto 4.2.14 is too old" in str(caught.value)
    assert "pip install --upgrade 'sqsx[local]'" in str(caught.value)
    assert "not installed" not in str(caught.value)


# -- progress ----------------------------------------------------------------------------------

# received 400, succeeded 90, retried 3, no_retry 2, nothing unprocessable or released,
# 16 in flight, 5 s elapsed, latencies p50 10 ms, p95 20 ms, max 50 ms
SNAPSHOT = StatsSnapshot(400, 90, 3, 2, 0, 0, 16, 5.0, 0.01, 0.02, 0.05)


@pytest.mark.parametrize(
    ("left", "rate", "eta"),
    [
        pytest.param(310, 16.9, "0:19", id="seconds"),
        pytest.param(100_000, 10.0, "2:46:40", id="hours"),
        pytest.param(0, 0.0, "0:00", id="done"),
        pytest.param(5, 0.0, "-:--", id="no-rate-yet"),
        pytest.param(None, 3.0, "-:--", id="no-depth-yet"),
    ],
)
def test_the_eta_is_what_is_left_at_the_current_rate(
    left: int | None, rate: float, eta: str
) -> None:
    assert format_eta(left, rate) == eta


def test_the_bar_text_keeps_counters_only_while_they_fit() -> None:
    narrow = format_bar_text(SNAPSHOT, 95, 400, 16.9, 40)
    assert narrow == "95/400   16.9 msg/s  ETA 0:19"
    wide = format_bar_text(SNAPSHOT, 95, 400, 16.9, 80)
    assert wide == f"{narrow} · in flight 16 · retried 3 · dropped 2"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_drain_bar_fits_80_columns_and_shows_an_eta(
    sqs_client: Any, queue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 300 messages on the queue and a bar on an 80-column terminal
    monkeypatch.setenv("COLUMNS", "80")
    queue = Queue(url=queue_url, sqs_client=sqs_client)
    queue.send_tasks(TaskMessage("t", {"n": n}) for n in range(300))
    stream = Terminal()
    bar = DrainBar(queue, stream)
    # ...whose rate is known: 95 processed in the last 1.9 seconds
    bar._window.append((0.0, 0))
    monkeypatch.setattr("sqsx.cli.progress.time.monotonic", lambda: 1.9)
    monkeypatch.setattr(queue, "stats", lambda: SNAPSHOT)

    # When it is drawn
    bar.start()
    bar.stop()

    # Then every line fits in 80 columns and the ETA is left / rate: 300 / 50 per second
    text = stream.getvalue()
    lines = [line for line in text.replace("\r", "\n").splitlines() if "draining" in line]
    assert lines, text
    final = lines[-1]
    assert "92/392" in final  # done (succeeded + dropped) out of done + the depth
    assert "50.0 msg/s  ETA 0:06" in final
    for line in lines:
        visible = _strip_ansi(line)
        assert len(visible) <= 80, visible


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_the_summary_says_nothing_finished_instead_of_zero_latencies() -> None:
    idle = StatsSnapshot(0, 0, 0, 0, 0, 0, 0, 3.0, 0.0, 0.0, 0.0)
    summary = format_summary(idle, 3.0, "stopped gracefully (SIGINT)")
    assert summary.endswith("  handler latency: no handler finished")
    assert "p50" not in summary


def test_a_taken_port_is_one_error_without_werkzeugs_own_lines(
    local_sqs: LocalSqs, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(OSError, match="already in use") as caught:
        LocalSqs(port=local_sqs.port).start()
    assert caught.value.errno == errno.EADDRINUSE
    assert capfd.readouterr().err == ""


def test_the_version_is_a_final_release_pip_prefers_over_0_7_0() -> None:
    # pip skips pre-releases (1.0.0.dev0) unless asked: this version must not be one
    from importlib.metadata import version

    from packaging.version import Version

    import sqsx

    assert version("sqsx") == sqsx.__version__
    assert not Version(sqsx.__version__).is_prerelease
    assert Version(sqsx.__version__) > Version("0.7.0")
