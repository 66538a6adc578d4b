"""The envelope of one received message, shared by both runtimes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqsx.codec import Task

__all__ = ["Message", "receive_count_of"]


@dataclass(slots=True)  # not frozen: built per message, and frozen costs 3x
class Message:
    """One received SQS message.

    Attributes:
        raw: the message in boto3's ReceiveMessage shape, as handlers see it.
        message_id: SQS's message id.
        receipt_handle: the handle that deletes it or changes its visibility.
        receive_count: ``ApproximateReceiveCount``; 1 when SQS did not say.
        group_id: ``MessageGroupId`` on FIFO queues, else ``None``.
        decoded_task: the body decoded ahead of processing (the polling worker's receivers
            do it while the handler threads are busy); ``None`` when it was not, or could
            not be (processing decodes it again then, and judges the error). Never copied
            by ``dataclasses.replace``: a new body is decoded anew.
    """

    raw: Mapping[str, Any]
    message_id: str
    receipt_handle: str
    receive_count: int
    group_id: str | None = None
    decoded_task: Task | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_boto3(cls, raw: Mapping[str, Any]) -> Message:
        """Wrap a message dict as ``ReceiveMessage`` returns it."""
        attributes = raw.get("Attributes") or {}
        return cls(
            raw=raw,
            message_id=str(raw.get("MessageId", "")),
            receipt_handle=str(raw.get("ReceiptHandle", "")),
            receive_count=receive_count_of(attributes),
            group_id=attributes.get("MessageGroupId"),
        )


def receive_count_of(attributes: Mapping[str, Any]) -> int:
    """``ApproximateReceiveCount`` from system attributes; 1 when missing or unreadable."""
    try:
        return max(int(attributes.get("ApproximateReceiveCount", 1)), 1)
    except (TypeError, ValueError):
        return 1
