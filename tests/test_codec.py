"""The wire format of a task and the size SQS counts: pure unit tests, no server."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from sqsx.codec import (
    DEFAULT_MAX_MESSAGE_BYTES,
    TASK_NAME_ATTRIBUTE,
    Task,
    check_size,
    decode_task,
    encode_kwargs,
    message_size,
    task_attributes,
)
from sqsx.exceptions import (
    MessageDecodeError,
    MessageTooLargeError,
    SqsxError,
    UnprocessableMessageError,
)

# The body the seed README shows for ``add_task("my_task", a=1, b=2, c=3)``.
SEED_BODY = "eyJrd2FyZ3MiOiB7ImEiOiAxLCAiYiI6IDIsICJjIjogM319"
TASK_ATTRS = {"TaskName": {"DataType": "String", "StringValue": "my_task"}}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


# -- encoding ------------------------------------------------------------------------------


def test_seed_task_encodes_to_the_published_bytes() -> None:
    assert encode_kwargs({"a": 1, "b": 2, "c": 3}) == SEED_BODY
    assert task_attributes("my_task") == TASK_ATTRS


def test_seed_bytes_decode_to_the_seed_task() -> None:
    assert decode_task(SEED_BODY, TASK_ATTRS) == Task("my_task", {"a": 1, "b": 2, "c": 3})


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="no-kwargs"),
        pytest.param({"n": None, "f": 1.5, "t": True}, id="scalars"),
        pytest.param({"items": [1, [2, {"x": "y"}]], "nested": {"a": {"b": {}}}}, id="nested"),
        pytest.param({"text": "héllo ✓ 漢字 🎉"}, id="non-ascii"),
        pytest.param({"q": "???", "r": ">>>"}, id="url-safe-alphabet"),
    ],
)
def test_round_trip(kwargs: dict[str, Any]) -> None:
    body = encode_kwargs(kwargs)
    assert decode_task(body, task_attributes("t")) == Task("t", kwargs)
    # URL-safe alphabet, plain ASCII, and JSON exactly as sqsx 0.7 writes it (json.dumps)
    assert not set(body) & {"+", "/"}
    assert body.isascii()
    assert base64.urlsafe_b64decode(body) == json.dumps({"kwargs": kwargs}).encode()


def test_url_safe_characters_appear_where_standard_base64_has_plus_and_slash() -> None:
    body = encode_kwargs({"q": "???"})
    assert "_" in body
    assert body == _b64(b'{"kwargs": {"q": "???"}}')


def test_unpadded_body_is_accepted() -> None:
    padded = encode_kwargs({"q": "?"})
    assert padded.endswith("==")
    assert decode_task(padded.rstrip("="), TASK_ATTRS).kwargs == {"q": "?"}


def test_kwargs_that_cannot_be_json_raise_type_error_naming_the_type() -> None:
    class Opaque:
        pass

    with pytest.raises(TypeError, match=r"JSON-serialisable.*Opaque"):
        encode_kwargs({"o": Opaque()})


@pytest.mark.parametrize("name", [pytest.param("", id="empty"), pytest.param(3, id="not-str")])
def test_task_name_must_be_a_non_empty_string(name: Any) -> None:
    with pytest.raises(ValueError, match="task_name"):
        task_attributes(name)


def test_custom_string_data_type_is_accepted() -> None:
    attrs = {TASK_NAME_ATTRIBUTE: {"DataType": "String.task", "StringValue": "t"}}
    assert decode_task(encode_kwargs({}), attrs).name == "t"


# -- decode errors -------------------------------------------------------------------------

DECODE_ERRORS = [
    pytest.param(SEED_BODY, None, "TaskName is missing", id="no-attributes"),
    pytest.param(SEED_BODY, {}, "TaskName is missing", id="no-taskname"),
    pytest.param(SEED_BODY, {"TaskName": "my_task"}, "malformed", id="taskname-not-a-map"),
    pytest.param(
        SEED_BODY,
        {"TaskName": {"DataType": "Number", "StringValue": "1"}},
        "not String",
        id="taskname-number",
    ),
    pytest.param(
        SEED_BODY,
        {"TaskName": {"DataType": "Binary", "BinaryValue": b"t"}},
        "not String",
        id="taskname-binary",
    ),
    pytest.param(SEED_BODY, {"TaskName": {"StringValue": "t"}}, "not String", id="no-datatype"),
    pytest.param(
        SEED_BODY, {"TaskName": {"DataType": "String", "StringValue": ""}}, "empty", id="empty-name"
    ),
    pytest.param(SEED_BODY, {"TaskName": {"DataType": "String"}}, "empty", id="no-stringvalue"),
    pytest.param(None, TASK_ATTRS, "body is missing", id="no-body"),
    pytest.param("not base64!", TASK_ATTRS, "not base64", id="not-base64"),
    pytest.param("héllo", TASK_ATTRS, "not base64", id="non-ascii-body"),
    pytest.param(_b64(b"\xff\xfe\x00"), TASK_ATTRS, "not UTF-8", id="not-utf8"),
    pytest.param(_b64(b"hello"), TASK_ATTRS, "not JSON", id="not-json"),
    pytest.param(_b64(b"[1, 2]"), TASK_ATTRS, "list, not an object", id="json-list"),
    pytest.param(_b64(b'{"args": [1]}'), TASK_ATTRS, 'no "kwargs"', id="no-kwargs-key"),
    pytest.param(_b64(b'{"kwargs": [1]}'), TASK_ATTRS, "list, not an object", id="kwargs-list"),
    pytest.param(_b64(b'{"kwargs": null}'), TASK_ATTRS, "NoneType", id="kwargs-null"),
    pytest.param(_b64(b"[" * 200_000), TASK_ATTRS, "nested too deeply", id="deep-json"),
]


@pytest.mark.parametrize(("body", "attributes", "reason"), DECODE_ERRORS)
def test_every_malformed_message_raises_message_decode_error(
    body: Any, attributes: Any, reason: str
) -> None:
    with pytest.raises(MessageDecodeError, match=reason) as info:
        decode_task(body, attributes)
    # one root: the dispatcher catches every decode failure as "unprocessable"
    assert isinstance(info.value, UnprocessableMessageError)
    assert isinstance(info.value, SqsxError)


# -- what JSON leaves loose: refused both ways -----------------------------------------------

LOOSE_BODIES = [
    pytest.param(b'{"kwargs": {"x": NaN}}', "NaN, which is not a JSON number", id="nan"),
    pytest.param(b'{"kwargs": {"x": Infinity}}', "Infinity", id="infinity"),
    pytest.param(b'{"kwargs": {"x": [-Infinity]}}', "-Infinity", id="minus-infinity"),
    pytest.param(b'{"kwargs": {"x": 1e999}}', "too large for a float", id="overflow"),
    pytest.param(b'{"kwargs": {"x": -2.5E+400}}', "too large for a float", id="neg-overflow"),
    pytest.param(b'{"kwargs": {"x": 1, "x": 2}}', "the key 'x' twice", id="duplicate-kwarg"),
    pytest.param(b'{"kwargs": {}, "kwargs": {"a": 1}}', "'kwargs' twice", id="duplicate-top"),
    pytest.param(b'{"kwargs": {"o": {"k": 1, "k": 1}}}', "'k' twice", id="duplicate-nested"),
    pytest.param(b'{"kwargs": {"s": "\\ud800"}}', "lone surrogate", id="lone-high-surrogate"),
    pytest.param(b'{"kwargs": {"\\udc00": 1}}', "lone surrogate", id="lone-low-in-a-key"),
    pytest.param(b'{"kwargs": {"s": "\\ude00\\ud83d"}}', "lone surrogate", id="reversed-pair"),
]


@pytest.mark.parametrize(("raw", "reason"), LOOSE_BODIES)
def test_json_that_readers_disagree_on_is_unprocessable(raw: bytes, reason: str) -> None:
    # Python's json would read these (NaN as a float, the last duplicate, a str that
    # cannot be UTF-8 encoded); other readers refuse them or read them otherwise
    with pytest.raises(MessageDecodeError) as info:
        decode_task(_b64(raw), TASK_ATTRS)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("raw", "kwargs"),
    [
        pytest.param(b'{"kwargs": {"e": "\\ud83d\\ude00"}}', {"e": "\U0001f600"}, id="pair"),
        pytest.param(b'{"kwargs": {"t": "\\\\ud800"}}', {"t": "\\ud800"}, id="escaped-backslash"),
        pytest.param(b'{"kwargs": {"f": 1e308, "g": -1E-400}}', {"f": 1e308, "g": -0.0}, id="big"),
        pytest.param(
            b'{"kwargs": {"a": 1, "b": {"a": 2}}}', {"a": 1, "b": {"a": 2}}, id="same-key-nested"
        ),
    ],
)
def test_their_valid_neighbours_still_decode(raw: bytes, kwargs: dict[str, Any]) -> None:
    assert decode_task(_b64(raw), TASK_ATTRS).kwargs == kwargs


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        pytest.param({"x": float("nan")}, "Out of range float", id="nan"),
        pytest.param({"x": [float("inf")]}, "Out of range float", id="inf"),
        pytest.param({"x": "a\ud800b"}, "lone surrogate", id="lone-surrogate"),
        pytest.param({"\udfff": 1}, "lone surrogate", id="lone-surrogate-key"),
    ],
)
def test_sending_refuses_what_reading_would_refuse(kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(TypeError, match=says):
        encode_kwargs(kwargs)


def test_a_string_outside_the_basic_plane_still_round_trips() -> None:
    kwargs = {"emoji": "\U0001f600 ok", "math": "\U0001d400"}
    assert decode_task(encode_kwargs(kwargs), TASK_ATTRS).kwargs == kwargs


# -- size ----------------------------------------------------------------------------------

SIZES = [
    pytest.param("abc", None, 3, id="body-only"),
    pytest.param("é✓", None, 2 + 3, id="body-utf8-bytes"),
    # 3 body + len("TaskName") 8 + len("String") 6 + len("my_task") 7
    pytest.param("abc", TASK_ATTRS, 3 + 8 + 6 + 7, id="string-attribute"),
    pytest.param(
        "",
        {"Bin": {"DataType": "Binary", "BinaryValue": b"\x00\x01\x02"}},
        3 + 6 + 3,
        id="binary-attribute",
    ),
    pytest.param(
        "x",
        {"N": {"DataType": "Number", "StringValue": "12.5"}, "Ä": {"DataType": "String"}},
        1 + (1 + 6 + 4) + (2 + 6),
        id="number-and-utf8-name",
    ),
]


@pytest.mark.parametrize(("body", "attributes", "expected"), SIZES)
def test_message_size_counts_body_and_attribute_names_types_values(
    body: str, attributes: Any, expected: int
) -> None:
    assert message_size(body, attributes) == expected


def test_check_size_accepts_exactly_the_limit() -> None:
    size = message_size("abc", TASK_ATTRS)
    assert check_size("abc", TASK_ATTRS, size) == size


def test_check_size_refuses_one_byte_over_with_size_and_limit() -> None:
    limit = message_size("abc", TASK_ATTRS) - 1
    with pytest.raises(ValueError, match=rf"{limit + 1} bytes .* limit of {limit} bytes") as info:
        check_size("abc", TASK_ATTRS, limit)
    assert isinstance(info.value, MessageTooLargeError)
    assert (info.value.size, info.value.limit) == (limit + 1, limit)


def test_default_limit_is_one_mebibyte() -> None:
    assert DEFAULT_MAX_MESSAGE_BYTES == 1_048_576
