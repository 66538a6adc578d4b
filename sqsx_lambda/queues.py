"""Which queue a record came from: its ``eventSourceARN`` as a queue URL, for the visibility
changes of the records that need one, and whether that queue is FIFO."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqsx.ordering import is_fifo

__all__ = ["QueueUrls", "arn_parts", "queue_url_for", "queue_url_from_arn"]

# ARNs remembered by one ``QueueUrls`` (a function is mapped to a few queues at most).
_MAX_KNOWN = 64


class QueueUrls:
    """Each record's queue URL, the ARNs of warm invocations remembered.

    Args:
        own_url: the queue's own URL (see ``queue_url_for``).
        fixed_url: the one URL for every record, when the handler was given one.
    """

    def __init__(self, own_url: str, fixed_url: str | None) -> None:
        self._own_url = own_url
        self._fixed_url = fixed_url
        self._known: dict[object, str] = {}
        self._own_fifo = is_fifo(own_url)

    def urls_for(self, records: Sequence[Mapping[str, Any]]) -> list[str]:
        """Each record's queue URL, in order."""
        if self._fixed_url is not None:
            return [self._fixed_url] * len(records)
        known = self._known
        urls = []
        for record in records:
            arn = record.get("eventSourceARN")
            url = known.get(arn)
            if url is None:
                if len(known) >= _MAX_KNOWN:
                    known.clear()
                url = known[arn] = queue_url_for(arn, self._own_url)
            urls.append(url)
        return urls

    def fifo(self, urls: Sequence[str]) -> bool:
        """True when the queue, or a queue of ``urls``, is FIFO (the group rule applies)."""
        return self._own_fifo or any(is_fifo(url) for url in set(urls))


def queue_url_from_arn(arn: str) -> str:
    """``arn:aws:sqs:REGION:ACCOUNT:NAME`` -> ``https://sqs.REGION.amazonaws.com/ACCOUNT/NAME``.

    China regions get the ``amazonaws.com.cn`` domain.

    Raises:
        ValueError: ``arn`` is not an SQS queue ARN.
    """
    region, account, name = arn_parts(arn)
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sqs.{region}.{domain}/{account}/{name}"


def queue_url_for(arn: object, queue_url: str) -> str:
    """The URL to change the visibility of a record from queue ``arn``.

    ``queue_url`` (the ``Queue``'s own URL) when it names the same queue (same account and
    name; its host may be a local server or a VPC endpoint) or when ``arn`` is not an SQS
    ARN; otherwise the public URL derived from ``arn``.
    """
    try:
        _, account, name = arn_parts(arn)
    except ValueError:
        return queue_url
    if queue_url.rstrip("/").split("/")[-2:] == [account, name]:
        return queue_url
    return queue_url_from_arn(str(arn))


def arn_parts(arn: object) -> tuple[str, str, str]:
    """``(region, account, name)`` of an SQS queue ARN.

    Raises:
        ValueError: ``arn`` is not an SQS queue ARN.
    """
    parts = arn.split(":") if isinstance(arn, str) else []
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not all(parts[3:]):
        raise ValueError(f"not an SQS queue ARN: {arn!r}")
    return parts[3], parts[4], parts[5]
