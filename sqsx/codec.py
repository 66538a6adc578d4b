"""The wire format of a task, and the size SQS counts for a message.

A task travels as:

- body: URL-safe base64 of the JSON object ``{"kwargs": {...}}`` (as sqsx 0.7 writes it);
- message attribute ``TaskName``: ``{"DataType": "String", "StringValue": <task name>}``.

JSON is the only serialisation: nothing received is unpickled or evaluated. What JSON
itself leaves loose is refused both ways, so every message means one thing to every
reader: ``NaN``/``Infinity`` (not JSON; other parsers reject them) and numbers too large
for a float, a lone UTF-16 surrogate (a string that cannot be UTF-8 encoded), and, when
reading, duplicate keys in an object (parsers disagree on which one wins).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from sqsx.clip import shown
from sqsx.exceptions import InvalidMessageError, MessageDecodeError, MessageTooLargeError

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "TASK_NAME_ATTRIBUTE",
    "Task",
    "check_size",
    "decode_kwargs",
    "decode_task",
    "encode_kwargs",
    "is_object",
    "message_size",
    "task_attributes",
    "task_name_of",
]

#: SQS's maximum message size since August 2025: 1 MiB, body plus attributes.
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576

#: The message attribute that names a task.
TASK_NAME_ATTRIBUTE = "TaskName"


@dataclass(slots=True)  # not frozen: built per message, and frozen costs 3x
class Task:
    """A decoded task: its name and the keyword arguments for its handler."""

    name: str
    kwargs: dict[str, Any]


def encode_kwargs(kwargs: Mapping[str, Any]) -> str:
    """The message body for ``kwargs``: URL-safe base64 of ``{"kwargs": kwargs}`` as JSON.

    JSON types are written as ``json.dumps`` writes them (byte for byte what sqsx 0.7
    wrote); pydantic models, dataclasses, dates, UUIDs and decimals are written as pydantic
    serialises them to JSON.

    Raises:
        TypeError: a value cannot be written as JSON (the message names its type), or is
            a float JSON has no number for (``nan``, ``inf``), or a string holds a lone
            surrogate (it cannot be UTF-8 encoded).
    """
    try:
        payload = json.dumps({"kwargs": dict(kwargs)}, default=_jsonable, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"task kwargs must be JSON-serialisable: {err}") from err
    except Exception as err:  # pydantic_core's PydanticSerializationError
        raise TypeError(f"task kwargs must be JSON-serialisable: {err}") from err
    if _SURROGATE_ESCAPE.search(payload) is not None and _has_lone_surrogate(payload):
        raise TypeError("task kwargs must be JSON-serialisable: a string has a lone surrogate")
    return base64.urlsafe_b64encode(payload.encode("utf-8")).decode("ascii")


# json writes every character outside ASCII as \uXXXX; a surrogate (paired or not)
# as \uD800-\uDFFF. Only then is the exact (slower) check needed.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_BIG_EXPONENT = re.compile(rb"[eE][+-]?[0-9]{3}")
_CONTAINERS = (dict, list)


def _has_lone_surrogate(text: str) -> bool:
    """True when the JSON ``text`` decodes to a string with a lone surrogate."""
    try:
        json.dumps(json.loads(text), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _jsonable(value: Any) -> Any:
    # Only values json cannot write get here; pydantic is loaded on first need.
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


def task_attributes(task_name: str) -> dict[str, dict[str, str]]:
    """The message attributes that carry ``task_name``."""
    if not isinstance(task_name, str) or not task_name:
        raise InvalidMessageError(f"task_name must be a non-empty string, got {task_name!r}")
    return {TASK_NAME_ATTRIBUTE: {"DataType": "String", "StringValue": task_name}}


def decode_task(body: str | None, attributes: Mapping[str, Any] | None) -> Task:
    """Decode a received message into a ``Task``.

    Args:
        body: the message body as SQS returned it.
        attributes: the message attributes in boto3's ReceiveMessage shape.

    Raises:
        MessageDecodeError: with the reason, for any body or attribute that is not in the
            wire format. No other exception type escapes.
    """
    name = task_name_of(attributes)
    return Task(name=name, kwargs=decode_kwargs(body))


def decode_kwargs(body: str | None) -> dict[str, Any]:
    """The kwargs of a task body (``decode_task`` without the task name).

    Raises:
        MessageDecodeError: the body is not in the wire format; the message says why.
    """
    kwargs = _plain_kwargs(body) if type(body) is str else None
    if kwargs is not None:
        return kwargs
    raw = _unbase64(body)
    try:
        text = raw.decode("utf-8")
        payload = _parse(text, _CHECKED_FLOATS if _BIG_EXPONENT.search(raw) else _DECODER)
    except UnicodeDecodeError as err:
        raise MessageDecodeError(f"body is not UTF-8 text: {err.reason}") from err
    except RecursionError as err:
        raise MessageDecodeError("body JSON is nested too deeply") from err
    except ValueError as err:
        raise MessageDecodeError(f"body is not JSON: {err}") from err
    if _SURROGATE_ESCAPE.search(text) is not None and _has_lone_surrogate(text):
        raise MessageDecodeError("body JSON has a string with a lone surrogate (not UTF-8)")
    if type(payload) is not dict:
        raise MessageDecodeError(f"body JSON is a {type(payload).__name__}, not an object")
    if "kwargs" not in payload:
        raise MessageDecodeError('body JSON has no "kwargs" key')
    kwargs = payload["kwargs"]
    if type(kwargs) is not dict:
        raise MessageDecodeError(f'"kwargs" is a {type(kwargs).__name__}, not an object')
    return kwargs


def _unbase64(body: str | None) -> bytes:
    """The bytes of a base64 body, either alphabet, its padding restored if stripped."""
    if not isinstance(body, str):
        raise MessageDecodeError("body is missing")
    body += "=" * (-len(body) % 4)  # some producers strip the padding: restore it
    try:
        data = body.encode("ascii").translate(_URL_SAFE_TO_STANDARD)
    except UnicodeEncodeError as err:  # its text would quote the body
        raise MessageDecodeError(
            f"body is not base64: non-ASCII character at position {err.start}"
        ) from err
    if _BASE64.fullmatch(data) is None:
        raise MessageDecodeError("body is not base64: a character is outside its alphabet")
    try:
        return binascii.a2b_base64(data)
    except binascii.Error as err:
        raise MessageDecodeError(f"body is not base64: {err}") from err


def _plain_kwargs(body: str) -> dict[str, Any] | None:
    """The kwargs of the usual body, ``{"kwargs": {name: scalar, ...}}`` as one JSON value
    in base64, read by json's C scanner without a Python call per object; ``None`` for any
    other body (then ``decode_kwargs`` reads it step by step, and says what is wrong).

    Duplicate keys are ruled out by counting: every key of the text has its own ``:``, and
    a ``:`` elsewhere can only sit inside a string. With no backslash in the text (so every
    parsed string is its literal text), colons in the text = keys in the text + colons
    inside strings >= distinct keys parsed + colons in the parsed strings, equal only when
    no key was dropped as a duplicate. Nested objects and lists are left to the checked
    decoder. Without a backslash there is no surrogate escape either, and UTF-8 text holds
    no lone surrogate.
    """
    try:
        raw = _strict_a2b(
            (body + "=" * (-len(body) % 4)).encode("ascii").translate(_URL_SAFE_TO_STANDARD)
        )
        if raw.count(b"{") != 2 or b"\\" in raw:
            return None
        text = raw.decode("utf-8")
        payload, end = _FAST.scan_once(text, 0)  # type: ignore[attr-defined]
    except (StopIteration, ValueError, RecursionError):  # the checked path says what is wrong
        return None
    if end != len(text) or type(payload) is not dict or len(payload) != 1:
        return None
    kwargs = payload.get("kwargs")
    if type(kwargs) is not dict:
        return None
    colons = raw.count(b":")
    expected = 1 + len(kwargs)
    if colons != expected:
        for key, value in kwargs.items():
            if type(value) is str:
                expected += value.count(":")
            elif type(value) in _CONTAINERS:
                return None
            expected += key.count(":")
        if colons != expected:
            return None
    return kwargs


def _parse(text: str, decoder: json.JSONDecoder) -> Any:
    """``decoder.decode(text)``, calling its C scanner directly for a body that is one
    JSON value and nothing else (every task body); anything else goes through ``decode``
    for its exact error."""
    try:
        value, end = decoder.scan_once(text, 0)  # type: ignore[attr-defined]
    except StopIteration:
        return decoder.decode(text)  # leading whitespace, or not JSON: decode says which
    if end != len(text):
        return decoder.decode(text)  # trailing whitespace (accepted) or extra data
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # dict() and a length check, in C; the Python loop runs only for a duplicate
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise MessageDecodeError(f"body JSON has the key {shown(key)} twice in an object")
            seen.add(key)
    return obj


def _no_constant(name: str) -> Any:
    raise MessageDecodeError(f"body JSON has {name}, which is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if number in (math.inf, -math.inf):
        raise MessageDecodeError(f"body JSON has a number too large for a float: {shown(text)}")
    return number


# Both alphabets are read: URL-safe (what sqsx writes) and standard.
_URL_SAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def is_object(value: object) -> TypeGuard[Mapping[str, Any]]:
    """True for a JSON object (any ``Mapping``). Messages arrive as plain dicts: the exact
    type test first spares the slower abstract ``Mapping`` check on every message."""
    return type(value) is dict or isinstance(value, Mapping)


def task_name_of(attributes: Mapping[str, Any] | None) -> str:
    """The task name a message's attributes (boto3's shape) carry.

    Raises:
        MessageDecodeError: the ``TaskName`` attribute is missing or malformed.
    """
    if type(attributes) is dict:  # the usual message: a String TaskName, as sqsx sends it
        attribute = attributes.get(TASK_NAME_ATTRIBUTE)
        if type(attribute) is dict and attribute.get("DataType") == "String":
            value = attribute.get("StringValue")
            if type(value) is str and value:
                return value
    if attributes is not None and not is_object(attributes):
        raise MessageDecodeError("message attributes are not an object")
    attribute = (attributes or {}).get(TASK_NAME_ATTRIBUTE)
    if attribute is None:
        raise MessageDecodeError(f"message attribute {TASK_NAME_ATTRIBUTE} is missing")
    if not is_object(attribute):
        raise MessageDecodeError(f"message attribute {TASK_NAME_ATTRIBUTE} is malformed")
    data_type = attribute.get("DataType")
    if not isinstance(data_type, str) or not data_type.startswith("String"):
        raise MessageDecodeError(
            f"message attribute {TASK_NAME_ATTRIBUTE} has DataType {shown(data_type)}, not String"
        )
    value = attribute.get("StringValue")
    if not isinstance(value, str) or not value:
        raise MessageDecodeError(f"message attribute {TASK_NAME_ATTRIBUTE} is empty")
    return value


def message_size(body: str, attributes: Mapping[str, Mapping[str, Any]] | None = None) -> int:
    """Bytes SQS counts against its size limit: the UTF-8 body plus, for every message
    attribute, its name, its data type and its value."""
    size = len(body.encode("utf-8"))
    for name, attribute in (attributes or {}).items():
        size += len(name.encode("utf-8"))
        size += len(str(attribute.get("DataType", "")).encode("utf-8"))
        if "StringValue" in attribute:
            size += len(str(attribute["StringValue"]).encode("utf-8"))
        if "BinaryValue" in attribute:
            value = attribute["BinaryValue"]
            size += len(value if isinstance(value, bytes | bytearray) else str(value).encode())
    return size


def check_size(
    body: str,
    attributes: Mapping[str, Mapping[str, Any]] | None,
    limit: int,
) -> int:
    """Return the message's size in bytes, or raise if it is over ``limit`` bytes.

    Raises:
        MessageTooLargeError: a ``ValueError`` that states the size and the limit.
    """
    size = message_size(body, attributes)
    if size > limit:
        raise MessageTooLargeError(size, limit)
    return size


# Built once: json.loads builds a new decoder (and scanner) on every call given options.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant)
_CHECKED_FLOATS = json.JSONDecoder(
    object_pairs_hook=_unique_keys, parse_constant=_no_constant, parse_float=_finite
)
# Rejects NaN, Infinity and numbers too large like the others, but builds objects in C (no
# pairs hook): only for the bodies ``_plain_kwargs`` can prove free of duplicate keys.
_FAST = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)

# Base64 of exactly the alphabet and its padding (what ``_BASE64`` and ``a2b_base64`` accept
# together) in one C call, on Python 3.11 and later.
_strict_a2b: Callable[[bytes], bytes]
if sys.version_info >= (3, 11):
    _strict_a2b = functools.partial(binascii.a2b_base64, strict_mode=True)
else:  # pragma: no cover - Python 3.10

    def _strict_a2b(data: bytes) -> bytes:
        if _BASE64.fullmatch(data) is None:
            raise binascii.Error("outside the alphabet")
        return binascii.a2b_base64(data)
