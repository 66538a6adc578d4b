"""Visibility of held messages: the heartbeat, retry backoffs and releases.

Every change of visibility goes through one serial ``BatchFlusher``, so a heartbeat
extension queued before a retry's backoff is always sent before it, and a heartbeat for a
message that has since been let go is dropped instead of undoing its backoff.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqsx.batching import BatchFlusher
from sqsx.message import Message
from sqsx.sqs import (
    BatchEntry,
    EntryFailure,
    SqsClient,
    capped_visibility,
    change_visibility_batch,
)

__all__ = ["VisibilityKeeper"]

# Kept off the 12-hour cap: our receive time is a little after SQS's.
_CAP_MARGIN_SECONDS = 60


@dataclass(slots=True)
class _Lease:
    message: Message
    first_received: float
    expires_at: float


class VisibilityKeeper:
    """Keeps held messages invisible while they wait or run, and applies visibility changes.

    Args:
        client: the SQS client.
        queue_url: the queue.
        visibility_timeout: the queue's visibility timeout in seconds; a held message is
            extended by this much when less than half of it is left.
    """

    def __init__(self, client: SqsClient, queue_url: str, visibility_timeout: int) -> None:
        self._client = client
        self._queue_url = queue_url
        self._timeout = max(int(visibility_timeout), 1)
        self._lock = threading.Lock()
        self._leases: dict[str, _Lease] = {}
        self._flusher = BatchFlusher(
            "ChangeMessageVisibilityBatch", self._send, queue_url, max_delay=0.05, workers=1
        )

    def hold(self, message: Message) -> None:
        """Start keeping ``message`` invisible (call on receipt)."""
        now = time.monotonic()
        with self._lock:
            self._leases[message.receipt_handle] = _Lease(message, now, now + self._timeout)

    def let_go(self, message: Message) -> None:
        """Stop the heartbeat for ``message`` (before deleting it or changing its visibility)."""
        with self._lock:
            self._leases.pop(message.receipt_handle, None)

    def change(self, message: Message, seconds: int) -> None:
        """Stop the heartbeat, then make ``message`` visible again after ``seconds`` (capped
        so that it does not reach past 12 hours from its receipt, which SQS refuses)."""
        with self._lock:
            lease = self._leases.pop(message.receipt_handle, None)
        if lease is not None and seconds:
            held = time.monotonic() - lease.first_received + _CAP_MARGIN_SECONDS
            seconds = capped_visibility(seconds, held)
        self._flusher.add(BatchEntry(message.message_id, message.receipt_handle, seconds))

    def held(self) -> list[Message]:
        """Messages whose visibility is being kept."""
        with self._lock:
            return [lease.message for lease in self._leases.values()]

    def pending(self) -> int:
        """Visibility changes not yet sent or answered."""
        return self._flusher.pending()

    def beat(self) -> None:
        """Extend every held message with less than half its timeout left; flush changes."""
        now = time.monotonic()
        extend: list[BatchEntry] = []
        with self._lock:
            for lease in self._leases.values():
                if lease.expires_at - now > self._timeout / 2:
                    continue
                seconds = capped_visibility(self._timeout, now - lease.first_received)
                if seconds <= 0:
                    continue
                lease.expires_at = now + seconds
                extend.append(
                    BatchEntry(
                        lease.message.message_id, lease.message.receipt_handle, seconds, True
                    )
                )
        for entry in extend:
            self._flusher.add(entry)
        self._flusher.tick()

    def close(self, deadline: float, abort: threading.Event | None = None) -> int:
        """Send every pending change, retrying until ``deadline`` (``time.monotonic()``) or
        until ``abort`` is set; returns the changes SQS did not confirm."""
        with self._lock:
            self._leases.clear()
        return self._flusher.close(deadline, abort)

    def _send(self, entries: Sequence[BatchEntry]) -> list[EntryFailure]:
        with self._lock:
            live = [e for e in entries if not e.lease or e.receipt_handle in self._leases]
        if not live:
            return []
        return change_visibility_batch(self._client, self._queue_url, live)
