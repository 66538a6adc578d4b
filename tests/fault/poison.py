"""Hand-crafted messages for the poison scenarios: 26 kinds no handler can take, and 5
unusual ones that are still valid tasks. Used by the polling and the Lambda poison tests.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

_TASK = {"TaskName": {"DataType": "String", "StringValue": "work"}}


def _b64(raw: bytes | str) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(data).decode("ascii")


def _kwargs_body(kwargs: dict[str, Any]) -> str:
    return _b64(json.dumps({"kwargs": kwargs}))


def _named(task_name: str, data_type: str = "String") -> dict[str, dict[str, Any]]:
    if data_type == "Binary":
        return {"TaskName": {"DataType": "Binary", "BinaryValue": task_name.encode()}}
    return {"TaskName": {"DataType": data_type, "StringValue": task_name}}


@dataclass(frozen=True, slots=True)
class Crafted:
    """A message written by hand, as ``send_message`` takes it.

    Attributes:
        kind: a short name for test ids and reports.
        body: the message body.
        attributes: ``MessageAttributes`` in boto3's shape, or ``None``.
        reason: for poison, a fragment the logged reason must contain; for an oddity that
            must run, the ``task_id`` its handler receives.
        sqs_refuses: SQS refuses to send it (see ``REFUSED_BY_SQS``): only a hand-written
            Lambda event, or a server that deviates from AWS (moto), can carry it.
    """

    kind: str
    body: str
    attributes: dict[str, dict[str, Any]] | None
    reason: str
    sqs_refuses: bool = False

    def send(self, client: Any, url: str) -> str:
        """Send it; returns its message id."""
        params: dict[str, Any] = {"QueueUrl": url, "MessageBody": self.body}
        if self.attributes:
            params["MessageAttributes"] = self.attributes
        return str(client.send_message(**params)["MessageId"])

    def send_unless_refused(self, client: Any, url: str) -> str | None:
        """Send it; its message id, or ``None`` when the server refused it as the sender's
        fault (HTTP 400), which only a kind ``sqs_refuses`` may be."""
        try:
            return self.send(client, url)
        except ClientError as err:
            status = err.response["ResponseMetadata"]["HTTPStatusCode"]
            assert self.sqs_refuses, f"{self.kind} refused, which SQS accepts: {err}"
            assert status == 400, (self.kind, status, err)
            return None


_DEEP = "[" * 100_000 + "]" * 100_000

#: Messages no ``work(context, task_id: str, seconds: float = 0.0)`` handler can ever take.
#: SQS refuses three of them (``sqs_refuses``): a body with no allowed character and an empty
#: body (SendMessage: "The minimum size is one character", only #x9 | #xA | #xD | #x20 to
#: #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF allowed,
#: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html)
#: and an empty attribute value ("Name, type, value and the message body must not be empty or
#: null",
#: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_MessageAttributeValue.html).
#: (Later versions of the SendMessage page say SQS replaces disallowed characters with U+FFFD
#: when the body holds at least one allowed character; ``control-characters`` holds none.)
#: LocalStack refuses them as AWS does; moto accepts them. They stay here because a
#: hand-written Lambda event can still carry them.
POISON: tuple[Crafted, ...] = (
    Crafted("not-base64", "this is not base64!", _TASK, "body is not base64"),
    Crafted("non-ascii-body", "Straße, not base64", _TASK, "body is not base64"),
    Crafted("control-characters", "\x01\x02\x03", _TASK, "body is not base64", sqs_refuses=True),
    Crafted("empty-body", "", _TASK, "body is not JSON", sqs_refuses=True),
    Crafted("base64-of-text", _b64("hello, world"), _TASK, "body is not JSON"),
    Crafted("invalid-utf8", _b64(b'\xff\xfe{"kwargs": {}}'), _TASK, "body is not UTF-8"),
    Crafted("utf8-bom", _b64('\ufeff{"kwargs": {"task_id": "bom"}}'), _TASK, "not JSON"),
    Crafted("json-array", _b64('[{"kwargs": {}}]'), _TASK, "body JSON is a list"),
    Crafted("json-number", _b64("42"), _TASK, "body JSON is a int"),
    Crafted("no-kwargs", _b64('{"args": ["x"]}'), _TASK, 'has no "kwargs" key'),
    Crafted("kwargs-list", _b64('{"kwargs": ["x"]}'), _TASK, '"kwargs" is a list'),
    Crafted("kwargs-null", _b64('{"kwargs": null}'), _TASK, '"kwargs" is a NoneType'),
    Crafted("kwargs-string", _b64('{"kwargs": "task_id=x"}'), _TASK, '"kwargs" is a str'),
    Crafted(
        "integer-too-long",
        _b64('{"kwargs": {"task_id": ' + "7" * 5000 + "}}"),
        _TASK,
        "body is not JSON",
    ),
    Crafted(
        "deeply-nested",
        _b64('{"kwargs": {"task_id": ' + _DEEP + "}}"),
        _TASK,
        "nested too deeply",
    ),
    Crafted(
        "huge-and-unfit",
        _kwargs_body({"task_id": "huge", "blob": "x" * 600_000}),
        _TASK,
        "unexpected keyword argument 'blob'",
    ),
    Crafted("no-task-name", _kwargs_body({"task_id": "p-none"}), None, "TaskName is missing"),
    Crafted(
        "empty-task-name",
        _kwargs_body({"task_id": "p-empty"}),
        _named(""),
        "is empty",
        sqs_refuses=True,
    ),
    Crafted(
        "task-name-number",
        _kwargs_body({"task_id": "p-number"}),
        _named("7", "Number"),
        "DataType 'Number'",
    ),
    Crafted(
        "task-name-binary",
        _kwargs_body({"task_id": "p-binary"}),
        _named("work", "Binary"),
        "DataType 'Binary'",
    ),
    Crafted("unknown-task", _kwargs_body({"task_id": "p-unknown"}), _named("nope"), "no handler"),
    Crafted(
        "import-path-task",
        _kwargs_body({"command": "touch /tmp/sqsx-pwned"}),
        _named("os.system"),
        "no handler registered for task 'os.system'",
    ),
    Crafted(
        "unexpected-kwarg",
        _kwargs_body({"task_id": "p-extra", "colour": "red"}),
        _TASK,
        "unexpected keyword argument 'colour'",
    ),
    Crafted("missing-kwarg", _kwargs_body({"seconds": 0}), _TASK, "missing a required argument"),
    Crafted(
        "kwarg-named-context",
        _kwargs_body({"task_id": "p-context", "context": {}}),
        _TASK,
        "multiple values for argument 'context'",
    ),
    Crafted(
        "kwarg-of-wrong-type",
        _kwargs_body({"task_id": ["not", "a", "string"]}),
        _TASK,
        "are invalid: task_id",
    ),
)


def _standard_alphabet_body() -> tuple[str, str]:
    # A body whose standard base64 has '+' and '/' (which sqsx 0.7 also accepted).
    for n in range(10_000):
        task_id = f"std-{n}?-->"
        encoded = base64.b64encode(json.dumps({"kwargs": {"task_id": task_id}}).encode())
        if b"+" in encoded and b"/" in encoded:
            return encoded.decode(), task_id
    raise AssertionError("no body with both '+' and '/' found")  # pragma: no cover


#: The kinds SQS refuses to send (``Crafted.sqs_refuses``).
REFUSED_BY_SQS: tuple[Crafted, ...] = tuple(c for c in POISON if c.sqs_refuses)

_STANDARD_BODY, _STANDARD_ID = _standard_alphabet_body()

#: Unusual messages that are still valid tasks: each must run (``reason`` is its task id).
ODDITIES: tuple[Crafted, ...] = (
    Crafted(
        "binary-attribute-beside",
        _kwargs_body({"task_id": "odd-binary"}),
        {**_TASK, "Blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}},
        "odd-binary",
    ),
    Crafted(
        "unpadded-base64",
        _kwargs_body({"task_id": "odd-unpadded"}).rstrip("="),
        _TASK,
        "odd-unpadded",
    ),
    Crafted("standard-alphabet", _STANDARD_BODY, _TASK, _STANDARD_ID),
    Crafted(
        "custom-string-type",
        _kwargs_body({"task_id": "odd-custom"}),
        _named("work", "String.task"),
        "odd-custom",
    ),
    Crafted(
        "unicode-kwargs",
        _kwargs_body({"task_id": "odd-unicode-Ωé😀"}),
        _TASK,
        "odd-unicode-Ωé😀",
    ),
)
