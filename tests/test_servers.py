"""The two test servers: what sqsx relies on them agreeing about, how the LocalStack one
listens, and which tests run on which server (``tests/servers.py``)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import make_s3_client
from servers import _servers_for
from test_security import _listening_addresses

from sqsx.sqs import BatchEntry, change_visibility_batch, delete_batch


def test_a_made_up_receipt_handle_is_refused_as_the_senders_fault(
    sqs_client: Any, queue_url: str
) -> None:
    # Given a receipt handle the server never issued
    entry = BatchEntry("m-1", "AQEBmade-up-handle", visibility_timeout=5)

    # When sqsx deletes it and changes its visibility in batches
    refused = [
        *delete_batch(sqs_client, queue_url, [entry]),
        *change_visibility_batch(sqs_client, queue_url, [entry]),
    ]

    # Then both entries are refused with ReceiptHandleIsInvalid, a sender fault that no retry
    # can fix (DeleteMessage and ChangeMessageVisibility in the SQS API reference,
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html)
    # even where the server flags it otherwise (LocalStack: SenderFault false)
    assert [(f.entry, f.code, f.sender_fault) for f in refused] == [
        (entry, "ReceiptHandleIsInvalid", True),
        (entry, "ReceiptHandleIsInvalid", True),
    ]


@pytest.mark.only_on("localstack", reason="moto's listener is checked in test_security.py")
def test_localstack_listens_on_127_0_0_1_only(endpoint_url: str) -> None:
    port = int(endpoint_url.rsplit(":", 1)[1])
    assert _listening_addresses(port) == ["127.0.0.1"]


class _Definition:
    """The slice of a pytest test definition ``_servers_for`` reads."""

    nodeid = "tests/test_x.py::test_y"

    def __init__(self, **marks: pytest.MarkDecorator) -> None:
        self._marks = {name: decorator.mark for name, decorator in marks.items()}

    def get_closest_marker(self, name: str) -> Any:
        return self._marks.get(name)


@pytest.mark.parametrize(
    ("marks", "chosen", "expected"),
    [
        pytest.param({}, ["moto", "localstack"], ["moto", "localstack"], id="every-server"),
        pytest.param({}, ["moto"], ["moto"], id="narrowed-by-option"),
        pytest.param(
            {"only_on": pytest.mark.only_on("localstack", reason="r")},
            ["moto", "localstack"],
            ["localstack"],
            id="only-on",
        ),
        pytest.param(
            {"only_on": pytest.mark.only_on("localstack", reason="r")},
            ["moto"],
            [],
            id="only-on-a-server-not-chosen",
        ),
        pytest.param(
            {"fault": pytest.mark.fault},
            ["moto", "localstack"],
            ["moto", "localstack"],
            id="fault-suite-on-both",
        ),
    ],
)
def test_each_server_test_runs_on_the_servers_it_is_meant_for(
    marks: dict[str, pytest.MarkDecorator], chosen: list[str], expected: list[str]
) -> None:
    assert _servers_for(_Definition(**marks), chosen) == expected


def test_only_on_without_a_reason_is_refused() -> None:
    with pytest.raises(pytest.UsageError, match="only_on needs a reason"):
        _servers_for(_Definition(only_on=pytest.mark.only_on("moto")), ["moto"])


def test_s3_answers_on_the_same_server(s3_endpoint_url: str, endpoint_url: str) -> None:
    # Given an S3 client for the test's server (large payloads are stored there)
    assert s3_endpoint_url == endpoint_url  # what conftest's s3_client relies on
    s3 = make_s3_client(s3_endpoint_url)
    # When an object is stored and read back
    s3.create_bucket(Bucket="sqsx-test-payloads")
    s3.put_object(Bucket="sqsx-test-payloads", Key="k", Body=b"payload")
    # Then the same bytes come back
    assert s3.get_object(Bucket="sqsx-test-payloads", Key="k")["Body"].read() == b"payload"
