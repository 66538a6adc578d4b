"""Property tests (hypothesis) of the wire codec and the backoff policy: pure, no server."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sqsx.backoff import MAX_VISIBILITY_TIMEOUT_SECONDS, BackoffPolicy, backoff_seconds
from sqsx.codec import Task, decode_task, encode_kwargs, task_attributes
from sqsx.exceptions import MessageDecodeError
from sqsx.message import Message

# -- strategies --------------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)  # not JSON numbers: sqsx refuses them
    | st.text()
)
json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=25,
)
kwargs_dicts = st.dictionaries(st.text(), json_values, max_size=8)
task_names = st.text(min_size=1)

_b64 = st.binary().map(lambda raw: base64.urlsafe_b64encode(raw).decode("ascii"))
_json_text = json_values.map(json.dumps) | st.text(alphabet='{}[]":,.-+eE0123456789 truefalsn\\')
_b64_json = _json_text.map(lambda text: base64.urlsafe_b64encode(text.encode()).decode("ascii"))
_b64_objects = st.dictionaries(st.text(), json_values, max_size=4).map(
    lambda obj: base64.urlsafe_b64encode(json.dumps(obj).encode()).decode("ascii")
)
bodies = st.none() | st.text() | _b64 | _b64_json | _b64_objects

_attribute_values = st.none() | st.integers() | st.text() | st.binary() | st.lists(st.text())
_attribute = st.dictionaries(
    st.sampled_from(["DataType", "StringValue", "BinaryValue", "Other"]) | st.text(),
    _attribute_values | st.sampled_from(["String", "Number", "Binary", "String.x", ""]),
)
attributes = st.none() | st.dictionaries(
    st.just("TaskName") | st.text(),
    _attribute | _attribute_values,
    max_size=3,
)


def _json_equal(left: Any, right: Any) -> bool:
    """``==`` that also tells ``True`` from ``1`` and ``1`` from ``1.0``, at any depth."""
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_json_equal, left, right))
    return type(left) is type(right) and left == right


# -- codec -------------------------------------------------------------------------------------


@given(kwargs=kwargs_dicts, name=task_names)
def test_any_json_kwargs_survive_the_wire(kwargs: dict[str, Any], name: str) -> None:
    # Given any JSON-able kwargs and task name, When encoded and decoded
    body = encode_kwargs(kwargs)
    task = decode_task(body, task_attributes(name))
    # Then the same task comes back, from an ASCII, URL-safe body
    assert task.name == name
    assert _json_equal(task.kwargs, kwargs)
    assert body.isascii() and not set(body) & {"+", "/"}


@given(kwargs=kwargs_dicts)
def test_unpadded_and_standard_alphabet_bodies_decode_the_same(kwargs: dict[str, Any]) -> None:
    raw = json.dumps({"kwargs": kwargs}).encode()
    expected = decode_task(encode_kwargs(kwargs), task_attributes("t"))
    for body in (base64.b64encode(raw).decode(), encode_kwargs(kwargs).rstrip("=")):
        assert decode_task(body, task_attributes("t")) == expected


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, attrs=attributes)
@example(body="[" * 50_000, attrs=None)
@example(body=base64.b64encode(b"[" * 50_000).decode(), attrs=task_attributes("t"))
@example(body=base64.b64encode(b'{"kwargs": ' + b"9" * 5000 + b"}").decode(), attrs=None)
@example(body="\udcff", attrs=task_attributes("t"))
@example(body=encode_kwargs({}), attrs={"TaskName": {"DataType": "String", "StringValue": 7}})
@example(body=encode_kwargs({}), attrs={"TaskName": "t"})
@example(body=encode_kwargs({}), attrs={"TaskName": {"DataType": None}})
def test_any_body_and_attributes_decode_or_raise_message_decode_error(
    body: str | None, attrs: dict[str, Any] | None
) -> None:
    # Given any body and any attributes of boto3's shape (a mapping), When decoded
    try:
        task = decode_task(body, attrs)
    except MessageDecodeError as err:
        # Then either a clean error with a reason...
        assert str(err)
        return
    # ...or a well-formed task
    assert isinstance(task, Task)
    assert isinstance(task.name, str) and task.name
    assert isinstance(task.kwargs, dict)


@given(body=bodies, attrs=attributes, count=st.text() | st.integers() | st.none())
def test_any_received_message_wraps_into_an_envelope(body: Any, attrs: Any, count: Any) -> None:
    raw = {"MessageId": "m", "ReceiptHandle": "r", "Body": body, "MessageAttributes": attrs}
    raw["Attributes"] = {"ApproximateReceiveCount": count}
    message = Message.from_boto3(raw)
    assert message.receive_count >= 1
    assert message.message_id == "m"


# -- backoff -----------------------------------------------------------------------------------

_seconds = st.integers(min_value=0, max_value=MAX_VISIBILITY_TIMEOUT_SECONDS)
_counts = st.integers(min_value=-3, max_value=10**9)


@st.composite
def policies(draw: st.DrawFn) -> BackoffPolicy:
    low, high = sorted((draw(_seconds), draw(_seconds)))
    return BackoffPolicy(low, high)


@given(policy=policies(), first=_counts, second=_counts)
def test_backoff_is_monotone_in_the_receive_count(
    policy: BackoffPolicy, first: int, second: int
) -> None:
    low, high = sorted((first, second))
    assert policy.delay(low) <= policy.delay(high)


@given(policy=policies(), count=_counts)
def test_backoff_stays_between_min_and_max_and_never_above_twelve_hours(
    policy: BackoffPolicy, count: int
) -> None:
    delay = policy.delay(count)
    assert policy.min_seconds <= delay <= policy.max_seconds <= MAX_VISIBILITY_TIMEOUT_SECONDS
    assert policy.delay(1) == policy.min_seconds


@given(
    count=_counts,
    low=st.integers(min_value=0, max_value=10**12),
    high=st.integers(min_value=0, max_value=10**12),
)
def test_raw_backoff_never_exceeds_its_max_or_twelve_hours(count: int, low: int, high: int) -> None:
    delay = backoff_seconds(count, low, high)
    assert 0 <= delay <= min(high, MAX_VISIBILITY_TIMEOUT_SECONDS)


@given(
    policy=policies(),
    low=st.none() | st.integers(min_value=-(10**6), max_value=10**9),
    high=st.none() | st.integers(min_value=-(10**6), max_value=10**9),
    first=_counts,
    second=_counts,
)
def test_any_retry_override_gives_a_valid_monotone_policy(
    policy: BackoffPolicy, low: int | None, high: int | None, first: int, second: int
) -> None:
    # Given any bounds a handler may pass to Retry (negative, crossed, huge, or None)
    overridden = policy.overridden(low, high)
    # Then the policy is valid, honours a 0, and its delays stay monotone and capped
    assert 0 <= overridden.min_seconds <= overridden.max_seconds <= MAX_VISIBILITY_TIMEOUT_SECONDS
    if low == 0:
        assert overridden.delay(1) == 0
    a, b = sorted((first, second))
    assert overridden.delay(a) <= overridden.delay(b) <= MAX_VISIBILITY_TIMEOUT_SECONDS
