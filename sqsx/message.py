"""The envelope of one received message, shared by both runtimes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Message"]


@dataclass(frozen=True, slots=True)
class Message:
    """One received SQS message.

    Attributes:
        raw: the message in boto3's ReceiveMessage shape, as handlers see it.
        message_id: SQS's message id.
        receipt_handle: the handle that deletes it or changes its visibility.
        receive_count: ``ApproximateReceiveCount``; 1 when SQS did not say.
        group_id: ``MessageGroupId`` on FIFO queues, else ``None``.
    """

    raw: Mapping[str, Any]
    message_id: str
    receipt_handle: str
    receive_count: int
    group_id: str | None = None

    @classmethod
    def from_boto3(cls, raw: Mapping[str, Any]) -> Message:
        """Wrap a message dict as ``ReceiveMessage`` returns it."""
        attributes = raw.get("Attributes") or {}
        try:
            receive_count = int(attributes.get("ApproximateReceiveCount", 1))
        except (TypeError, ValueError):
            receive_count = 1
        return cls(
            raw=raw,
            message_id=str(raw.get("MessageId", "")),
            receipt_handle=str(raw.get("ReceiptHandle", "")),
            receive_count=max(receive_count, 1),
            group_id=attributes.get("MessageGroupId"),
        )
