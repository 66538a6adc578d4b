"""Lambda SQS records <-> boto3 messages, event checks and queue URLs (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sqsx.ordering import is_fifo
from sqsx_lambda import EventError, RecordError
from sqsx_lambda.records import (
    envelope,
    queue_url_for,
    queue_url_from_arn,
    read_record,
    records_of,
    to_boto3,
    to_lambda,
)

EVENTS = Path(__file__).resolve().parent.parent / "events"
ARN = "arn:aws:sqs:eu-west-1:123456789012:orders"


def boto3_message(**overrides: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "MessageId": "6f1f9c5e-0000-4000-8000-000000000001",
        "ReceiptHandle": "AQEBhandle==",
        "MD5OfBody": "9e107d9d372bb6826bd81d3542a419d6",
        "Body": "eyJrd2FyZ3MiOiB7fX0=",
        "Attributes": {
            "SenderId": "AIDAEXAMPLE",
            "SentTimestamp": "1700000000000",
            "ApproximateReceiveCount": "2",
            "ApproximateFirstReceiveTimestamp": "1700000000100",
        },
        "MD5OfMessageAttributes": "3e5a1f3b2c8d9e0f1a2b3c4d5e6f7a8b",
        "MessageAttributes": {
            "TaskName": {"StringValue": "charge", "DataType": "String"},
            "Amount": {"StringValue": "12.5", "DataType": "Number.float"},
            "Signature": {"BinaryValue": b"\x00\xffsig", "DataType": "Binary"},
        },
    }
    message.update(overrides)
    return message


def test_a_record_converts_to_exactly_what_boto3_receive_message_returns() -> None:
    # Given a boto3 message with string, number and binary attributes, as Lambda delivers it
    original = boto3_message()
    record = to_lambda(original, event_source_arn=ARN)
    assert record["messageAttributes"]["Signature"]["binaryValue"] == "AP9zaWc="
    assert record["awsRegion"] == "eu-west-1"

    # When it is converted back, Then nothing is lost or renamed (binary values are bytes)
    assert to_boto3(record) == original


def test_a_message_without_attributes_has_no_empty_attribute_keys() -> None:
    original = boto3_message()
    del original["MessageAttributes"], original["MD5OfMessageAttributes"]
    record = to_lambda(original, event_source_arn=ARN)
    assert record["messageAttributes"] == {}
    assert record["md5OfMessageAttributes"] is None
    assert to_boto3(record) == original


def test_read_record_keeps_the_envelope_the_core_needs() -> None:
    record = to_lambda(
        boto3_message(Attributes={"ApproximateReceiveCount": "3", "MessageGroupId": "acct-1"}),
        event_source_arn=ARN + ".fifo",
    )
    message = read_record(record)
    assert (message.message_id, message.receipt_handle) == (record["messageId"], "AQEBhandle==")
    assert (message.receive_count, message.group_id) == (3, "acct-1")
    assert message.raw["MessageAttributes"]["TaskName"]["StringValue"] == "charge"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param({"body": None}, "body is a NoneType", id="null-body"),
        pytest.param({"receiptHandle": ""}, "receiptHandle is missing", id="no-receipt-handle"),
        pytest.param({"attributes": "x"}, "attributes is a str", id="attributes-not-object"),
        pytest.param({"messageAttributes": []}, "messageAttributes is a list", id="attrs-list"),
        pytest.param(
            {"messageAttributes": {"A": {"stringValue": "v"}}}, "'A' has no dataType", id="no-type"
        ),
        pytest.param(
            {"messageAttributes": {"A": {"dataType": "Binary", "binaryValue": "*"}}},
            "'A' has a binaryValue that is not base64",
            id="bad-base64",
        ),
    ],
)
def test_a_malformed_record_raises_with_its_envelope(change: dict[str, Any], reason: str) -> None:
    record = {**to_lambda(boto3_message(), event_source_arn=ARN), **change}
    with pytest.raises(RecordError, match=reason) as caught:
        read_record(record)
    assert caught.value.envelope.message_id == record["messageId"]
    assert caught.value.envelope.receive_count == (2 if change.get("attributes") != "x" else 1)


def test_envelope_reads_what_it_can_from_a_broken_record() -> None:
    message = envelope({"messageId": "m1", "attributes": {"ApproximateReceiveCount": "x"}})
    assert (message.message_id, message.receipt_handle, message.receive_count) == ("m1", "", 1)


def sqs_record(**fields: Any) -> dict[str, Any]:
    return {**to_lambda(boto3_message(), event_source_arn=ARN), **fields}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        pytest.param([sqs_record()], "the event is a list", id="not-an-object"),
        pytest.param({"detail-type": "Scheduled Event"}, "no 'Records' list", id="no-records"),
        pytest.param({"Records": "x"}, "'Records' is a str", id="records-not-list"),
        pytest.param({"Records": [42]}, r"Records\[0\] is a int", id="record-not-object"),
        pytest.param(
            {"Records": [sqs_record(), {"eventSource": "aws:s3", "s3": {}}]},
            r"Records\[1\] has eventSource 'aws:s3'",
            id="s3-event",
        ),
        pytest.param(
            {"Records": [{"eventSource": "aws:kinesis", "kinesis": {"data": "e30="}}]},
            r"Records\[0\] has eventSource 'aws:kinesis'",
            id="kinesis-event",
        ),
        pytest.param(
            {"Records": [sqs_record(messageId="")]},
            r"Records\[0\] has no messageId",
            id="record-without-id",
        ),
        pytest.param(
            {"Records": [sqs_record(), sqs_record(messageId=42)]},
            r"Records\[1\] has no messageId",
            id="record-with-a-number-id",
        ),
        pytest.param(
            {"Records": [{k: v for k, v in sqs_record().items() if k != "eventSource"}]},
            r"Records\[0\] has eventSource None",
            id="record-without-source",
        ),
    ],
)
def test_an_event_that_is_not_an_sqs_event_is_refused_by_name(event: Any, message: str) -> None:
    with pytest.raises(EventError, match=message):
        records_of(event)


def test_records_that_are_mappings_but_not_dicts_are_read_as_records() -> None:
    # Given an event whose records are read-only mappings, not dicts (the C-loop check's miss)
    from types import MappingProxyType

    records = [MappingProxyType(sqs_record()), sqs_record()]
    # Then they are still SQS records, checked one by one
    assert list(records_of({"Records": records})) == records


def test_an_empty_records_list_is_a_valid_event() -> None:
    assert list(records_of({"Records": []})) == []


@pytest.mark.parametrize(
    ("arn", "url"),
    [
        pytest.param(ARN, "https://sqs.eu-west-1.amazonaws.com/123456789012/orders", id="std"),
        pytest.param(
            "arn:aws:sqs:us-east-1:123456789012:jobs.fifo",
            "https://sqs.us-east-1.amazonaws.com/123456789012/jobs.fifo",
            id="fifo",
        ),
        pytest.param(
            "arn:aws-cn:sqs:cn-north-1:123456789012:jobs",
            "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/jobs",
            id="china",
        ),
    ],
)
def test_queue_url_from_arn(arn: str, url: str) -> None:
    assert queue_url_from_arn(arn) == url


def test_queue_url_from_arn_refuses_other_arns() -> None:
    with pytest.raises(ValueError, match="not an SQS queue ARN"):
        queue_url_from_arn("arn:aws:sns:us-east-1:123456789012:topic")


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        pytest.param(ARN, "http://127.0.0.1:9324/123456789012/orders", id="same-queue-local-url"),
        pytest.param(
            "arn:aws:sqs:eu-west-1:123456789012:other",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/other",
            id="other-queue-from-arn",
        ),
        pytest.param(None, "http://127.0.0.1:9324/123456789012/orders", id="no-arn"),
    ],
)
def test_queue_url_for_prefers_the_queue_s_own_url(arn: Any, expected: str) -> None:
    assert queue_url_for(arn, "http://127.0.0.1:9324/123456789012/orders") == expected


def test_fifo_is_read_from_the_arn() -> None:
    assert is_fifo(ARN + ".fifo") and not is_fifo(ARN) and not is_fifo(None)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(path.name, id=path.stem)
        for path in sorted(EVENTS.glob("*.json"))
        if path.name != "tasks-malformed-record.json"
    ],
)
def test_sample_events_have_lambda_s_exact_shape(name: str) -> None:
    # Powertools' parser models describe what Lambda delivers: every sample must fit them
    from aws_lambda_powertools.utilities.parser.models import SqsModel

    event = json.loads((EVENTS / name).read_text())
    parsed = SqsModel.model_validate(event)
    assert len(parsed.Records) == len(records_of(event)) >= 3
