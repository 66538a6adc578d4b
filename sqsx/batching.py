"""Collects delete or change-visibility entries and sends them ten to a call."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from sqsx.sqs import (
    MAX_BATCH_ENTRIES,
    BatchEntry,
    EntryFailure,
    error_code,
    is_sqs_error,
    is_transient,
)

__all__ = ["BatchFlusher"]

logger = logging.getLogger("sqsx.batching")

SendBatch = Callable[[Sequence[BatchEntry]], list[EntryFailure]]

# A failed entry is tried again after 0.2 s, 0.4 s, ... up to 5 s, at most this many times.
_MAX_ATTEMPTS = 8
_RETRY_BASE_SECONDS = 0.2
_RETRY_CAP_SECONDS = 5.0


@dataclass(slots=True)
class _Pending:
    entry: BatchEntry
    attempts: int
    not_before: float


class BatchFlusher:
    """Pending entries for one batch operation, sent by a small pool of threads.

    A batch is sent as soon as ten entries are due, or by ``tick()`` once the oldest entry
    has waited ``max_delay`` seconds. Entries refused by SQS for a reason on its side, and
    whole calls that fail (throttling, 5xx, network), are tried again with backoff; entries
    refused as the sender's fault (an expired receipt handle) are logged and dropped.

    Args:
        operation: name for logs (``DeleteMessageBatch``...).
        send: sends up to ten entries, returns the refused ones, raises on a failed call.
        queue_url: for logs.
        max_delay: seconds an entry may wait for nine others.
        workers: calls in flight at once; 1 keeps calls in the order entries were added.
    """

    def __init__(
        self,
        operation: str,
        send: SendBatch,
        queue_url: str,
        *,
        max_delay: float,
        workers: int,
    ) -> None:
        self._operation = operation
        self._send = send
        self._queue_url = queue_url
        self._max_delay = max_delay
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._oldest = 0.0
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"sqsx-{operation}")
        self._in_flight: set[Future[None]] = set()
        self._closed = False

    def add(self, entry: BatchEntry) -> None:
        """Queue ``entry``; a full batch is sent at once. After ``close`` it is sent now."""
        now = time.monotonic()
        with self._lock:
            closed = self._closed
            if not closed:
                if not self._pending:
                    self._oldest = now
                self._pending.append(_Pending(entry, 0, now))
                if len(self._pending) >= MAX_BATCH_ENTRIES:
                    self._submit_due(now, force=False)
        if closed:  # a handler that outlived the stop deadline
            self._flush([_Pending(entry, _MAX_ATTEMPTS - 1, now)])

    def tick(self) -> None:
        """Send what has waited ``max_delay`` seconds (called by the engine's timer thread)."""
        now = time.monotonic()
        with self._lock:
            if self._pending and now - self._oldest >= self._max_delay:
                self._submit_due(now, force=True)

    def pending(self) -> int:
        """Entries not yet sent, or in a call not yet answered."""
        with self._lock:
            # a snapshot: done-callbacks discard from the set in the pool's threads
            return len(self._pending) + sum(not f.done() for f in tuple(self._in_flight))

    def close(self, deadline: float) -> None:
        """Send everything, retrying failures until ``deadline`` (``time.monotonic()``);
        entries added afterwards are sent at once by the caller's thread."""
        while time.monotonic() < deadline:
            with self._lock:
                if self._pending:
                    self._submit_due(time.monotonic(), force=True)
                busy = [f for f in tuple(self._in_flight) if not f.done()]
                if not self._pending and not busy:
                    break
            time.sleep(0.02)
        with self._lock:
            self._closed = True
            # a heartbeat means nothing once its keeper is closed
            leftover = [p for p in self._pending if not p.entry.lease]
            self._pending = []
            in_flight = tuple(self._in_flight)
        wait(in_flight, timeout=max(deadline - time.monotonic(), 0))
        self._executor.shutdown(wait=False, cancel_futures=True)
        if leftover and time.monotonic() < deadline:
            self._flush(leftover)  # added after the loop above: one last try
        elif leftover:
            for item in leftover:
                logger.error(
                    "%s not done before the stop deadline message_id=%s queue_url=%s",
                    self._operation,
                    item.entry.message_id,
                    self._queue_url,
                )

    def _submit_due(self, now: float, *, force: bool) -> None:
        # Called with the lock held.
        due = [p for p in self._pending if p.not_before <= now]
        while due and (force or len(due) >= MAX_BATCH_ENTRIES):
            batch, due = due[:MAX_BATCH_ENTRIES], due[MAX_BATCH_ENTRIES:]
            taken = {id(p) for p in batch}
            self._pending = [p for p in self._pending if id(p) not in taken]
            future = self._executor.submit(self._flush, batch)
            self._in_flight.add(future)
            future.add_done_callback(self._in_flight.discard)
        self._oldest = min((p.not_before for p in self._pending), default=now)

    def _flush(self, batch: list[_Pending]) -> None:
        by_id = {id(p.entry): p for p in batch}
        try:
            failures = self._send([p.entry for p in batch])
        except Exception as err:
            if not is_transient(err):
                logger.error(
                    "%s refused for %d entries: %s; not retried (their messages are handled "
                    "again after the visibility timeout) queue_url=%s",
                    self._operation,
                    len(batch),
                    error_code(err),
                    self._queue_url,
                    exc_info=not is_sqs_error(err),
                )
                return
            logger.warning(
                "%s call failed: %s, will retry %d entries queue_url=%s",
                self._operation,
                error_code(err),
                len(batch),
                self._queue_url,
            )
            self._retry(batch, error_code(err))
            return
        retry = []
        for failure in failures:
            item = by_id.get(id(failure.entry))
            if item is None:
                continue
            if failure.sender_fault:
                # A heartbeat for a message deleted meanwhile is refused: expected, quiet.
                log = logger.debug if failure.entry.lease else logger.warning
                log(
                    "%s refused message_id=%s code=%s: %s queue_url=%s",
                    self._operation,
                    failure.entry.message_id,
                    failure.code,
                    failure.detail,
                    self._queue_url,
                )
            else:
                retry.append(item)
        if retry:
            self._retry(retry, ",".join(sorted({f.code for f in failures})))

    def _retry(self, items: list[_Pending], reason: str) -> None:
        now = time.monotonic()
        with self._lock:
            for item in items:
                item.attempts += 1
                if item.attempts >= _MAX_ATTEMPTS or self._closed:
                    logger.error(
                        "%s gave up after %d attempts (%s) message_id=%s queue_url=%s",
                        self._operation,
                        item.attempts,
                        reason,
                        item.entry.message_id,
                        self._queue_url,
                    )
                    continue
                delay = min(_RETRY_BASE_SECONDS * 2 ** (item.attempts - 1), _RETRY_CAP_SECONDS)
                item.not_before = now + delay
                if not self._pending:
                    self._oldest = item.not_before
                self._pending.append(item)
