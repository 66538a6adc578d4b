"""The Extended Client pointer format (sqsx.pointer): pure parsing, no S3."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sqsx.exceptions import UnprocessableMessageError
from sqsx.pointer import (
    LEGACY_POINTER_CLASS,
    LEGACY_SIZE_ATTRIBUTE,
    POINTER_CLASS,
    SIZE_ATTRIBUTE,
    MalformedPointerError,
    Pointer,
    pointer_body,
    read_pointer,
    size_attribute_of,
)


def size(value: str = "12", data_type: str = "Number") -> dict[str, Any]:
    return {SIZE_ATTRIBUTE: {"DataType": data_type, "StringValue": value}}


def test_pointer_body_is_what_the_extended_clients_write() -> None:
    body = pointer_body("bucket-1", "k/1")
    assert json.loads(body) == [POINTER_CLASS, {"s3BucketName": "bucket-1", "s3Key": "k/1"}]
    assert read_pointer(body, size("5"), SIZE_ATTRIBUTE) == Pointer("bucket-1", "k/1", 5)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            json.dumps([LEGACY_POINTER_CLASS, {"s3BucketName": "b", "s3Key": "k"}]), id="1.x-class"
        ),
        pytest.param(
            '["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b","s3Key":"k"}]',
            id="java-compact",
        ),
        pytest.param(json.dumps({"s3BucketName": "b", "s3Key": "k"}), id="bare-object"),
    ],
)
def test_other_pointer_shapes_are_read(body: str) -> None:
    assert read_pointer(body, size(), SIZE_ATTRIBUTE) == Pointer("b", "k", 12)


def test_legacy_size_attribute_is_found_and_named() -> None:
    attributes = {LEGACY_SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": "7"}}
    assert size_attribute_of(attributes) == LEGACY_SIZE_ATTRIBUTE
    pointer = read_pointer(pointer_body("b", "k"), attributes, LEGACY_SIZE_ATTRIBUTE)
    assert (pointer.size, pointer.attribute) == (7, LEGACY_SIZE_ATTRIBUTE)


@pytest.mark.parametrize(
    "attributes",
    [None, {}, {"TaskName": {"DataType": "String", "StringValue": "t"}}],
)
def test_no_size_attribute_means_no_pointer(attributes: Any) -> None:
    assert size_attribute_of(attributes) is None


@pytest.mark.parametrize(
    ("body", "attributes"),
    [
        pytest.param(None, size(), id="no-body"),
        pytest.param("not json", size(), id="not-json"),
        pytest.param("[[[[" * 50_000, size(), id="huge-body"),
        pytest.param(
            json.dumps(["other.Class", {"s3BucketName": "b", "s3Key": "k"}]),
            size(),
            id="unknown-class",
        ),
        pytest.param(
            json.dumps([POINTER_CLASS, {"s3BucketName": "b", "s3Key": "k"}, 3]),
            size(),
            id="three-items",
        ),
        pytest.param(json.dumps([POINTER_CLASS, "b/k"]), size(), id="no-object"),
        pytest.param(json.dumps([POINTER_CLASS, {"s3BucketName": "b"}]), size(), id="no-key"),
        pytest.param(
            json.dumps([POINTER_CLASS, {"s3BucketName": "", "s3Key": "k"}]),
            size(),
            id="empty-bucket",
        ),
        pytest.param(
            json.dumps([POINTER_CLASS, {"s3BucketName": 1, "s3Key": "k"}]),
            size(),
            id="bucket-not-text",
        ),
        pytest.param(json.dumps("b/k"), size(), id="json-string"),
        pytest.param(pointer_body("b", "k"), size("12", "String"), id="size-not-number"),
        pytest.param(pointer_body("b", "k"), size("-1"), id="negative-size"),
        pytest.param(pointer_body("b", "k"), size("1.5"), id="fractional-size"),
        pytest.param(pointer_body("b", "k"), size("²"), id="unicode-digit"),
        pytest.param(pointer_body("b", "k"), size("9" * 30), id="absurd-size"),
        pytest.param(pointer_body("b", "k"), {SIZE_ATTRIBUTE: "12"}, id="attribute-not-object"),
    ],
)
def test_malformed_pointers_are_unprocessable(body: Any, attributes: Any) -> None:
    with pytest.raises(MalformedPointerError) as caught:
        read_pointer(body, attributes, SIZE_ATTRIBUTE)
    assert isinstance(caught.value, UnprocessableMessageError)
    assert 's3Key": "k"' not in str(caught.value)  # the text never quotes the body
