"""The codec's fast read of the usual body against a strict reference decoder: the same
kwargs, or an error, for bodies built to defeat its colon count (duplicate keys, colons and
braces inside strings, escapes, nesting). Pure unit tests, no server."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqsx.codec import decode_kwargs
from sqsx.exceptions import MessageDecodeError


class Refused(Exception):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) < len(keys):
        raise Refused("duplicate key")
    return dict(pairs)


def _constant(name: str) -> Any:
    raise Refused(name)


def _float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise Refused("too large")
    return number


def reference(body: str) -> dict[str, Any] | None:
    """What the wire format says ``body`` holds (``None``: not a task body), the slow way."""
    try:
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        text = data.decode("utf-8")
        payload = json.loads(
            text, object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_float
        )
        json.dumps(payload, ensure_ascii=False).encode("utf-8")  # no lone surrogate
    except (Refused, ValueError, UnicodeError):
        return None
    if type(payload) is not dict or type(payload.get("kwargs")) is not dict:
        return None
    return payload["kwargs"]


def decoded(body: str) -> dict[str, Any] | None:
    try:
        return decode_kwargs(body)
    except MessageDecodeError:
        return None


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii")


# Keys and strings made of the characters the colon count is about.
_TEXT = st.text(alphabet=':{}[]",\\ab\u00e9', max_size=6)
_SCALAR = st.one_of(
    st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False), _TEXT, st.booleans()
)
_VALUE = st.recursive(
    _SCALAR, lambda inner: st.lists(inner, max_size=2) | st.dictionaries(_TEXT, inner, max_size=2)
)


@st.composite
def bodies(draw: st.DrawFn) -> str:
    """``{"kwargs": {...}}`` texts written pair by pair, so keys may repeat, with ASCII
    escapes or raw UTF-8, sometimes with a second top-level pair."""
    ascii_only = draw(st.booleans())
    pairs = draw(st.lists(st.tuples(_TEXT, _VALUE), max_size=4))
    if pairs and draw(st.booleans()):
        pairs.append((draw(st.sampled_from([key for key, _ in pairs])), draw(_VALUE)))  # dup
    inner = ", ".join(
        f"{json.dumps(key, ensure_ascii=ascii_only)}: {json.dumps(value, ensure_ascii=ascii_only)}"
        for key, value in pairs
    )
    top = f'"kwargs": {{{inner}}}'
    extra = draw(st.sampled_from(["", ', "kwargs": {}', ', "kwargs": 1', ', "x": {"a": 1}']))
    return "{" + top + extra + "}"


@settings(max_examples=400, deadline=None)
@given(bodies())
def test_the_fast_read_agrees_with_a_strict_decoder(text: str) -> None:
    body = b64(text)
    assert decoded(body) == reference(body)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"kwargs": {"a": 1, "a": 2}}', id="dup"),
        pytest.param('{"kwargs": {"a": ":", "a": 2}}', id="dup-hidden-by-a-colon-value"),
        pytest.param('{"kwargs": {"a": "\\u003a", "a": 2}}', id="dup-hidden-by-an-escape"),
        pytest.param('{"kwargs": {"a:": 1, "a:": 2}}', id="dup-colon-keys"),
        pytest.param('{"kwargs": {"a": [1], "a": 2}}', id="dup-beside-a-list"),
        pytest.param('{"kwargs": 1, "kwargs": {"a": 2}}', id="dup-top"),
    ],
)
def test_duplicate_keys_are_refused_however_they_hide(text: str) -> None:
    assert reference(b64(text)) is None
    with pytest.raises(MessageDecodeError, match="twice"):
        decode_kwargs(b64(text))


def test_values_with_colons_are_read() -> None:
    body = b64('{"kwargs": {"at": "12:00:01", "url": "http://x:1/", "k:v": true}}')
    assert decode_kwargs(body) == {"at": "12:00:01", "url": "http://x:1/", "k:v": True}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"kwargs": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}", id="deep-lists"),
        pytest.param('{"kwargs": {"a": ' + "9" * 5000 + "}}", id="an-int-of-5000-digits"),
        pytest.param('{"kwargs": {"a": 1e999}}', id="a-float-too-large"),
        pytest.param('{"kwargs": {"a": -Infinity}}', id="infinity"),
    ],
)
def test_what_the_fast_read_cannot_take_is_a_decode_error(text: str) -> None:
    # a RecursionError or a ValueError from json's scanner is the checked path's to report
    with pytest.raises(MessageDecodeError):
        decode_kwargs(b64(text))
