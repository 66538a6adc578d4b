"""S3Payloads (sqsx.payloads): offloading, resolving and clean-up against moto's S3 over HTTP.

The hook's three methods are called here one by one; test_payloads_runtimes.py runs them
through the worker and LambdaHandler, test_payloads_interop.py against the real
amazon-sqs-extended-client.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import make_s3_client

from sqsx.codec import encode_kwargs, message_size, task_attributes
from sqsx.exceptions import ConfigurationError, MessageTooLargeError, UnprocessableMessageError
from sqsx.message import Message
from sqsx.payloads import (
    MalformedPointerError,
    PayloadError,
    PayloadFetchError,
    PayloadSizeError,
    PayloadUnavailableError,
    S3Payloads,
)
from sqsx.pointer import LEGACY_SIZE_ATTRIBUTE, POINTER_CLASS, SIZE_ATTRIBUTE, pointer_body
from sqsx.sending import OutgoingMessage

URL = "http://127.0.0.1:1/000000000000/q"


def outgoing(body: str, **attributes: Any) -> OutgoingMessage:
    return OutgoingMessage.build(body, attributes or None, fifo=False)


def received(sent: OutgoingMessage, message_id: str = "m-1") -> Message:
    """What ReceiveMessage would return for ``sent`` (boto3's shape)."""
    raw: dict[str, Any] = {"MessageId": message_id, "ReceiptHandle": "rh", "Body": sent.body}
    if sent.attributes:
        raw["MessageAttributes"] = dict(sent.attributes)
    return Message.from_boto3(raw)


def pointer_message(bucket: str, key: str, declared: int) -> Message:
    attributes = {SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": str(declared)}}
    return received(OutgoingMessage(pointer_body(bucket, key), attributes))


def s3_calls(client: Any) -> list[str]:
    calls: list[str] = []
    client.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    return calls


def fail_s3(client: Any, operation: str, code: str, status: int) -> None:
    """Every ``operation`` call of ``client`` fails with S3 error ``code`` (HTTP ``status``)."""

    def hook(**_: Any) -> None:
        raise ClientError(
            {
                "Error": {"Code": code, "Message": "injected"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
            operation,
        )

    client.meta.events.register(f"before-call.s3.{operation}", hook)


# -- sending -----------------------------------------------------------------------------------


def test_small_messages_are_sent_as_they_are(s3_client: Any, bucket: str) -> None:
    payloads = S3Payloads(s3_client, bucket, threshold_bytes=100)
    calls = s3_calls(s3_client)
    message = outgoing("x" * 85, TaskName={"DataType": "String", "StringValue": "t"})
    assert message.size == 100  # the attribute counts: 85 + 8 ("TaskName") + 6 + 1
    assert payloads.before_send(message) is message
    assert calls == []


def test_a_message_over_the_threshold_goes_to_s3_as_a_pointer(s3_client: Any, bucket: str) -> None:
    # Given a threshold that the body alone is under but body plus attributes is over
    payloads = S3Payloads(s3_client, bucket, threshold_bytes=100, key_prefix="tasks/")
    body = "é" * 45  # 90 UTF-8 bytes
    message = outgoing(body, TaskName={"DataType": "String", "StringValue": "t"})
    # When it is sent
    sent = payloads.before_send(message)
    # Then the body is a pointer, the object holds the body, the size attribute its bytes
    kind, where = json.loads(sent.body)
    assert kind == POINTER_CLASS and where["s3BucketName"] == bucket
    assert where["s3Key"].startswith("tasks/")
    stored = s3_client.get_object(Bucket=bucket, Key=where["s3Key"])["Body"].read()
    assert stored == body.encode("utf-8")
    assert sent.attributes[SIZE_ATTRIBUTE] == {"DataType": "Number", "StringValue": "90"}
    assert sent.attributes["TaskName"]["StringValue"] == "t"
    assert sent.size < 200


def test_threshold_zero_offloads_everything_and_default_is_the_queue_limit(
    s3_client: Any, bucket: str
) -> None:
    always = S3Payloads(s3_client, bucket, threshold_bytes=0)
    assert SIZE_ATTRIBUTE in always.before_send(outgoing("x")).attributes
    default = S3Payloads(s3_client, bucket)
    assert default.threshold_bytes == 1_048_576
    bound = default.for_queue(1000)
    assert (bound.threshold_bytes, default.threshold_bytes) == (1000, 1_048_576)
    assert bound.before_send(outgoing("x" * 1000)).body == "x" * 1000
    assert SIZE_ATTRIBUTE in bound.before_send(outgoing("x" * 1001)).attributes


def test_key_layout_encryption_and_legacy_attribute_are_configurable(
    s3_client: Any, bucket: str
) -> None:
    payloads = S3Payloads(
        s3_client,
        bucket,
        threshold_bytes=0,
        key_prefix="p/",
        key_function=lambda message: f"{len(message.body)}.json",
        sse="AES256",
        legacy_attribute=True,
    )
    sent = payloads.before_send(outgoing("hello"))
    assert json.loads(sent.body)[1]["s3Key"] == "p/5.json"
    assert LEGACY_SIZE_ATTRIBUTE in sent.attributes and SIZE_ATTRIBUTE not in sent.attributes
    head = s3_client.head_object(Bucket=bucket, Key="p/5.json")
    assert head["ServerSideEncryption"] == "AES256"


def test_a_pointer_is_sent_again_as_it_is(s3_client: Any, bucket: str) -> None:
    payloads = S3Payloads(s3_client, bucket, threshold_bytes=0)
    first = payloads.before_send(outgoing("payload"))
    assert payloads.before_send(first) is first  # forwarding a received pointer


def test_sending_refusals_are_clear_and_put_nothing(s3_client: Any, bucket: str) -> None:
    calls = s3_calls(s3_client)
    payloads = S3Payloads(s3_client, bucket, threshold_bytes=0, max_object_bytes=10)
    with pytest.raises(MessageTooLargeError, match=r"11 bytes .* limit of 10 bytes"):
        payloads.before_send(outgoing("x" * 11))
    ten = {f"a{n}": {"DataType": "String", "StringValue": "v"} for n in range(10)}
    with pytest.raises(ValueError, match="SQS allows 10"):
        payloads.before_send(outgoing("x", **ten))
    bad_key = S3Payloads(s3_client, bucket, threshold_bytes=0, key_function=lambda m: "")
    with pytest.raises(ValueError, match="1 to 1024"):
        bad_key.before_send(outgoing("x"))
    assert calls == []


@pytest.mark.parametrize(
    ("settings", "text"),
    [
        pytest.param({"threshold_bytes": -1}, "between 0 and 1048576", id="threshold"),
        pytest.param({"threshold_bytes": 2_000_000}, "between 0 and 1048576", id="threshold-high"),
        pytest.param({"max_object_bytes": 0}, "between 1 and", id="max-object"),
        pytest.param({"sse": "rot13"}, "sse must be", id="sse"),
        pytest.param({"kms_key_id": "k"}, "kms_key_id needs", id="kms-without-sse"),
        pytest.param({"key_prefix": "p" * 1024}, "under 1024", id="prefix"),
    ],
)
def test_settings_are_checked_once(s3_client: Any, settings: dict[str, Any], text: str) -> None:
    with pytest.raises(ConfigurationError, match=text):
        S3Payloads(s3_client, "b", **settings)


def test_a_client_without_s3_methods_is_refused() -> None:
    with pytest.raises(TypeError, match="lacks put_object"):
        S3Payloads(object(), "b")


# -- receiving ---------------------------------------------------------------------------------


def test_inline_messages_are_untouched(s3_client: Any, bucket: str) -> None:
    calls = s3_calls(s3_client)
    message = received(outgoing(encode_kwargs({"a": 1}), **task_attributes("t")))
    assert S3Payloads(s3_client, bucket).resolve_message(message) is message
    assert calls == []


def test_a_pointer_resolves_to_what_an_inline_message_looks_like(
    s3_client: Any, bucket: str
) -> None:
    # Given a task message sent through S3
    payloads = S3Payloads(s3_client, bucket, threshold_bytes=0)
    inline = outgoing(encode_kwargs({"blob": "z" * 5000}), **task_attributes("t"))
    sent = payloads.before_send(inline)
    # When it is received and resolved
    calls = s3_calls(s3_client)
    resolved = payloads.resolve_message(received(sent))
    # Then the handler's view is the inline message plus the documented S3Payload field
    raw = dict(resolved.raw)
    field = raw.pop("S3Payload")
    assert raw == dict(received(inline).raw)
    assert (field["Bucket"], field["Size"], field["Pointer"]) == (
        bucket,
        len(inline.body),
        sent.body,
    )
    assert (resolved.message_id, resolved.receipt_handle) == ("m-1", "rh")
    assert calls == ["GetObject"]


def test_a_raw_pointer_without_other_attributes_has_no_attributes_left(
    s3_client: Any, bucket: str
) -> None:
    payloads = S3Payloads(s3_client, bucket, threshold_bytes=0)
    resolved = payloads.resolve_message(received(payloads.before_send(outgoing("plain text"))))
    assert resolved.raw["Body"] == "plain text"
    assert "MessageAttributes" not in resolved.raw


# -- faults and bad input ---------------------------------------------------------------------


def put(s3_client: Any, bucket: str, key: str, data: bytes) -> None:
    s3_client.put_object(Bucket=bucket, Key=key, Body=data)


def test_missing_object_is_unprocessable_and_logged_without_payload(
    sqs_client: Any, s3_client: Any, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a pointer to a key that is not there, processed by a queue's core
    from sqsx import Queue
    from sqsx.dispatch import Verdict

    with pytest.raises(PayloadUnavailableError, match="NoSuchKey") as caught:
        S3Payloads(s3_client, bucket).resolve_message(pointer_message(bucket, "gone", 3))
    assert isinstance(caught.value, UnprocessableMessageError)
    assert (caught.value.bucket, caught.value.key) == (bucket, "gone")
    queue = Queue(URL, sqs_client, payloads=S3Payloads(s3_client, bucket))
    caplog.set_level(logging.INFO)
    outcome = queue.process(pointer_message(bucket, "gone", 3))
    # Then it is unprocessable, with one line naming the message, the bucket and the key
    assert outcome.verdict is Verdict.UNPROCESSABLE
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1
    assert all(f in lines[0] for f in ("message_id=m-1", f"bucket={bucket}", "key=gone", URL))


@pytest.mark.parametrize(
    ("code", "status", "permanent"),
    [
        # GetObject without s3:GetObject permission answers 403 AccessDenied
        # (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html, "Permissions").
        pytest.param("AccessDenied", 403, True, id="access-denied"),
        # S3 asks to slow down with 503 SlowDown; 500 InternalError is worth a retry
        # (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
        pytest.param("SlowDown", 503, False, id="throttled"),
        pytest.param("InternalError", 500, False, id="5xx"),
    ],
)
def test_s3_errors_are_classified(
    s3_client: Any, bucket: str, code: str, status: int, permanent: bool
) -> None:
    put(s3_client, bucket, "k", b"abc")
    fail_s3(s3_client, "GetObject", code, status)
    with pytest.raises((PayloadUnavailableError, PayloadFetchError), match=code) as caught:
        S3Payloads(s3_client, bucket).resolve_message(pointer_message(bucket, "k", 3))
    assert isinstance(caught.value, UnprocessableMessageError) is permanent


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(5)
    for connection in held:
        connection.close()
    listener.close()


def test_an_s3_timeout_is_transient(silent_port: int, bucket: str) -> None:
    # Given an S3 endpoint that accepts and never answers, and a 0.3 s read timeout
    client = make_s3_client(
        f"http://127.0.0.1:{silent_port}",
        read_timeout=0.3,
        connect_timeout=0.3,
        retries={"max_attempts": 1, "mode": "standard"},
    )
    # Then the message is retried, not poison
    with pytest.raises(PayloadFetchError, match="ReadTimeout") as caught:
        S3Payloads(client, bucket).resolve_message(pointer_message(bucket, "k", 3))
    assert not isinstance(caught.value, UnprocessableMessageError)


@pytest.mark.parametrize(
    ("declared", "stored", "error", "text"),
    [
        pytest.param(
            4, b"abc", PayloadSizeError, "is 3 bytes, ExtendedPayloadSize says 4", id="mismatch"
        ),
        pytest.param(3, b"\xff\xfe\x00", PayloadError, "not UTF-8", id="not-utf8"),
    ],
)
def test_objects_that_disagree_are_unprocessable(
    s3_client: Any, bucket: str, declared: int, stored: bytes, error: type[Exception], text: str
) -> None:
    put(s3_client, bucket, "k", stored)
    with pytest.raises(error, match=text):
        S3Payloads(s3_client, bucket).resolve_message(pointer_message(bucket, "k", declared))


def test_a_large_declared_size_is_refused_without_an_s3_call(s3_client: Any, bucket: str) -> None:
    calls = s3_calls(s3_client)
    with pytest.raises(PayloadSizeError, match="declares 2000 bytes, over max_object_bytes=1000"):
        S3Payloads(s3_client, bucket, max_object_bytes=1000).resolve_message(
            pointer_message(bucket, "k", 2000)
        )
    assert calls == []


def test_a_large_object_is_refused_from_its_length_before_it_is_read(
    s3_client: Any, bucket: str
) -> None:
    # Given a 2 MiB object whose pointer lies about its size (10 bytes)
    put(s3_client, bucket, "big", b"x" * 2_097_152)
    streams: list[Any] = []
    s3_client.meta.events.register(
        "after-call.s3.GetObject", lambda parsed, **_: streams.append(parsed["Body"])
    )
    # When a consumer with a 1 MiB maximum resolves it
    payloads = S3Payloads(s3_client, bucket, max_object_bytes=1_048_576)
    with pytest.raises(PayloadSizeError, match="is 2097152 bytes, over max_object_bytes"):
        payloads.resolve_message(pointer_message(bucket, "big", 10))
    # Then not one byte of the body was read
    assert len(streams) == 1 and streams[0]._amount_read == 0


def test_a_pointer_to_another_bucket_is_refused_unless_accepted(
    s3_client: Any, bucket: str
) -> None:
    put(s3_client, bucket, "k", b"abc")
    calls = s3_calls(s3_client)
    with pytest.raises(MalformedPointerError, match="not accepted"):
        S3Payloads(s3_client, "mine").resolve_message(pointer_message(bucket, "k", 3))
    assert calls == []
    accepting = S3Payloads(s3_client, "mine", read_buckets=[bucket])
    assert accepting.resolve_message(pointer_message(bucket, "k", 3)).raw["Body"] == "abc"


def test_a_malformed_pointer_is_unprocessable(s3_client: Any, bucket: str) -> None:
    attributes = {SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": "3"}}
    message = received(OutgoingMessage("secret payload, not a pointer", attributes))
    with pytest.raises(MalformedPointerError) as caught:
        S3Payloads(s3_client, bucket).resolve_message(message)
    assert "secret" not in str(caught.value)


# -- clean-up ---------------------------------------------------------------------------------


def keys(s3_client: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.mark.parametrize("resolved", [True, False], ids=["resolved", "as-received"])
def test_after_delete_removes_the_object(s3_client: Any, bucket: str, resolved: bool) -> None:
    payloads = S3Payloads(s3_client, bucket, threshold_bytes=0)
    message = received(payloads.before_send(outgoing("payload")))
    if resolved:
        message = payloads.resolve_message(message)
    assert len(keys(s3_client, bucket)) == 1
    payloads.after_delete(message, URL)
    assert keys(s3_client, bucket) == []


def test_delete_after_false_keeps_objects_and_inline_messages_cost_nothing(
    s3_client: Any, bucket: str
) -> None:
    keeping = S3Payloads(s3_client, bucket, threshold_bytes=0, delete_after=False)
    message = keeping.resolve_message(received(keeping.before_send(outgoing("payload"))))
    calls = s3_calls(s3_client)
    keeping.after_delete(message, URL)
    S3Payloads(s3_client, bucket).after_delete(received(outgoing("inline")), URL)
    assert calls == [] and len(keys(s3_client, bucket)) == 1


def test_a_failed_delete_is_logged_and_swallowed(
    s3_client: Any, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    payloads = S3Payloads(s3_client, bucket, threshold_bytes=0)
    message = received(payloads.before_send(outgoing("payload")))
    fail_s3(s3_client, "DeleteObject", "InternalError", 500)
    caplog.set_level(logging.WARNING, logger="sqsx.payloads")
    payloads.after_delete(message, URL)  # does not raise
    line = caplog.records[-1].getMessage()
    assert "not deleted (InternalError)" in line and "message_id=m-1" in line and URL in line
    assert len(keys(s3_client, bucket)) == 1


def test_objects_in_buckets_not_accepted_are_never_deleted(s3_client: Any, bucket: str) -> None:
    put(s3_client, bucket, "k", b"abc")
    S3Payloads(s3_client, "mine").after_delete(pointer_message(bucket, "k", 3), URL)
    assert keys(s3_client, bucket) == ["k"]


def test_pointer_size_is_what_sqs_counts(s3_client: Any, bucket: str) -> None:
    sent = S3Payloads(s3_client, bucket, threshold_bytes=0).before_send(outgoing("x" * 500_000))
    assert sent.size == message_size(sent.body, sent.attributes) < 300


def test_a_queue_binds_the_default_threshold_to_its_size_limit(
    sqs_client: Any, s3_client: Any, bucket: str
) -> None:
    from sqsx import Queue, RawQueue

    shared = S3Payloads(s3_client, bucket)
    small = Queue(URL, sqs_client, max_message_bytes=262_144, payloads=shared)
    raw = RawQueue(URL, lambda url, message: None, sqs_client, payloads=shared)
    explicit = Queue(URL, sqs_client, payloads=S3Payloads(s3_client, bucket, threshold_bytes=10))
    assert isinstance(small.hooks[-1], S3Payloads) and small.hooks[-1].threshold_bytes == 262_144
    assert raw.hooks[-1].threshold_bytes == 1_048_576  # type: ignore[attr-defined]
    assert explicit.hooks[-1].threshold_bytes == 10  # type: ignore[attr-defined]
    assert small.copy(url=URL + "2").hooks[-1].threshold_bytes == 262_144  # type: ignore[attr-defined]


def test_payloads_never_reach_logs_above_debug(
    sqs_client: Any, s3_client: Any, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given payloads carrying a sentinel: one that resolves, one whose size disagrees, one
    # whose read is throttled, one whose handler raises
    from sqsx import RawQueue

    sentinel = "SENTINEL-7f3a"
    payload = f"{sentinel} " * 50

    seen: list[str] = []

    def handler(url: str, message: dict[str, Any]) -> None:
        seen.append(message["Body"])
        if "raise" in message["S3Payload"]["Key"]:
            raise RuntimeError("handler failed")

    queue = RawQueue(URL, handler, sqs_client, payloads=S3Payloads(s3_client, bucket))
    put(s3_client, bucket, "ok", payload.encode())
    put(s3_client, bucket, "raise", payload.encode())
    put(s3_client, bucket, "mismatch", payload.encode())
    put(s3_client, bucket, "throttled", payload.encode())
    size = len(payload)
    messages = [
        pointer_message(bucket, "ok", size),
        pointer_message(bucket, "raise", size),
        pointer_message(bucket, "mismatch", size + 1),
    ]
    caplog.set_level(logging.DEBUG)
    verdicts = [queue.process(message).verdict.value for message in messages]
    fail_s3(s3_client, "GetObject", "SlowDown", 503)
    verdicts.append(queue.process(pointer_message(bucket, "throttled", size)).verdict.value)
    # Then each had its fate (the handler saw the sentinel), and no line above DEBUG shows it
    assert verdicts == ["succeeded", "retried", "unprocessable", "retried"]
    assert seen == [payload, payload]
    loud = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert len(loud) >= 3
    for record in loud:
        assert sentinel not in record.getMessage() + (record.exc_text or "")
