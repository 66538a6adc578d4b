"""Collects delete or change-visibility entries and sends them ten to a call.

Every entry keeps its own schedule. A first attempt is due ``max_delay`` seconds after it
was added (sooner when nine others join it); an entry SQS refused, or whose call failed,
is due again after ``retry_delay`` of its own failures. An entry waiting for its retry
never holds back another entry's first attempt: that head-of-line blocking let one
refused delete make the deletes of the others arrive after their visibility timeout.

Calls are made by a few daemon threads (not ``concurrent.futures``, whose workers the
interpreter joins at exit): a call blocked on an endpoint that never answers cannot keep
the process alive after the worker has stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqsx.clip import clip
from sqsx.sqs import (
    MAX_BATCH_ENTRIES,
    BatchEntry,
    EntryFailure,
    error_code,
    is_sqs_error,
    is_transient,
    retry_delay,
)

__all__ = ["BatchFlusher"]

logger = logging.getLogger("sqsx.batching")

SendBatch = Callable[[Sequence[BatchEntry]], list[EntryFailure]]

#: Tries per entry (first attempt included) before it is given up, about 16 s in all.
MAX_ATTEMPTS = 8


@dataclass(slots=True)
class _Pending:
    entry: BatchEntry
    failures: int
    due: float  # time.monotonic() at which it must be sent


class BatchFlusher:
    """Pending entries for one batch operation, sent by a few daemon threads.

    Ten first attempts are sent at once; ``tick()`` sends every entry whose time has come
    (with any others waiting, to fill the call). Entries refused on SQS's side, and the
    entries of calls that failed (throttling, 5xx, network), are retried on their own
    schedule, up to ``MAX_ATTEMPTS`` tries; entries whose receipt handle SQS no longer
    honours are dropped at once with one log line, as are other entries refused as the
    sender's fault.

    Args:
        operation: name for logs (``DeleteMessageBatch``...).
        send: sends up to ten entries, returns the refused ones, raises on a failed call.
        queue_url: for logs.
        max_delay: seconds a first attempt may wait for nine others.
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
        self._fresh: deque[_Pending] = deque()  # first attempts, oldest first
        self._retries: list[_Pending] = []
        self._calls = _Calls(self._flush, workers, f"sqsx-{operation}")
        self._closed = False

    def add(self, entry: BatchEntry) -> None:
        """Queue ``entry``; ten first attempts are sent at once. After ``close`` it is sent
        now, by the caller's thread."""
        now = time.monotonic()
        with self._lock:
            closed = self._closed
            if not closed:
                self._fresh.append(_Pending(entry, 0, now + self._max_delay))
                if len(self._fresh) >= MAX_BATCH_ENTRIES:
                    self._calls.submit([self._fresh.popleft() for _ in range(MAX_BATCH_ENTRIES)])
        if closed:  # a handler that outlived the stop deadline: one try
            self._flush([_Pending(entry, MAX_ATTEMPTS - 1, now)])

    def add_many(self, entries: Sequence[BatchEntry]) -> None:
        """``add`` for each of ``entries``, under one lock (ten to a call after ``close``)."""
        if not entries:
            return
        now = time.monotonic()
        with self._lock:
            closed = self._closed
            if not closed:
                fresh = self._fresh
                fresh.extend(_Pending(entry, 0, now + self._max_delay) for entry in entries)
                while len(fresh) >= MAX_BATCH_ENTRIES:
                    self._calls.submit([fresh.popleft() for _ in range(MAX_BATCH_ENTRIES)])
        if closed:  # handlers that outlived the stop deadline: one try
            for start in range(0, len(entries), MAX_BATCH_ENTRIES):
                chunk = entries[start : start + MAX_BATCH_ENTRIES]
                self._flush([_Pending(entry, MAX_ATTEMPTS - 1, now) for entry in chunk])

    def tick(self) -> None:
        """Send what is due (called by the engine's timer thread)."""
        with self._lock:
            self._submit_due(time.monotonic(), force=False)

    def pending(self) -> int:
        """Entries not yet sent, plus calls not yet answered."""
        with self._lock:
            return len(self._fresh) + len(self._retries) + self._calls.busy()

    def close(self, deadline: float, abort: threading.Event | None = None) -> int:
        """Send everything, retrying failures until ``deadline`` (``time.monotonic()``) or
        until ``abort`` is set; entries added afterwards are sent at once by the caller.

        Returns:
            How many entries were not confirmed by SQS: given up unsent, or in a call
            still unanswered. Their messages are handled again after their visibility
            timeout (a delete) or keep the visibility they had (a change).
        """

        def stopping() -> bool:
            return time.monotonic() >= deadline or (abort is not None and abort.is_set())

        while not stopping():
            with self._lock:
                self._submit_due(time.monotonic(), force=True)
                if not self._fresh and not self._retries and not self._calls.busy():
                    break
            time.sleep(0.02)
        with self._lock:
            self._closed = True
            # a heartbeat means nothing once its keeper is closed
            leftover = [p for p in (*self._fresh, *self._retries) if not p.entry.lease]
            self._fresh.clear()
            self._retries = []
        while self._calls.busy() and not stopping():
            self._calls.wait_idle(0.02)
        unanswered = self._calls.close()
        if leftover and not stopping():
            self._flush(leftover)  # retries still waiting at the end: one last try
            leftover = []
        if leftover or unanswered:
            logger.debug(
                "%s not confirmed at the stop message_ids=%s queue_url=%s",
                self._operation,
                ",".join(p.entry.message_id for p in leftover),
                self._queue_url,
            )
        return len(leftover) + unanswered

    def _submit_due(self, now: float, *, force: bool) -> None:
        # Called with the lock held. Whatever is due goes out, topped up with the rest.
        ready = [p for p in self._retries if p.due <= now]
        if not (force or ready or (self._fresh and self._fresh[0].due <= now)):
            return
        if ready:
            self._retries = [p for p in self._retries if p.due > now]
        batch = ready + list(self._fresh)
        self._fresh.clear()
        for start in range(0, len(batch), MAX_BATCH_ENTRIES):
            self._calls.submit(batch[start : start + MAX_BATCH_ENTRIES])

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
            self._retry([(p, error_code(err)) for p in batch])
            return
        retry = []
        for failure in failures:
            item = by_id.get(id(failure.entry))
            if item is None:
                continue
            if failure.retryable:
                retry.append((item, failure.code))
            else:
                self._log_refused(failure)
        if retry:
            self._retry(retry)

    def _log_refused(self, failure: EntryFailure) -> None:
        # A heartbeat for a message deleted meanwhile is refused: expected, INFO.
        log = logger.info if failure.entry.lease else logger.warning
        log(
            "%s refused, dropped: %s (%s)%s message_id=%s queue_url=%s",
            self._operation,
            failure.code,
            clip(failure.detail, 200),
            "; its message is handled again after the visibility timeout"
            if failure.stale_handle and not failure.entry.lease
            else "",
            failure.entry.message_id,
            self._queue_url,
        )

    def _retry(self, items: list[tuple[_Pending, str]]) -> None:
        now = time.monotonic()
        with self._lock:
            for item, reason in items:
                item.failures += 1
                if item.failures >= MAX_ATTEMPTS or self._closed:
                    logger.error(
                        "%s gave up after %d attempts (%s) message_id=%s queue_url=%s",
                        self._operation,
                        item.failures,
                        reason,
                        item.entry.message_id,
                        self._queue_url,
                    )
                    continue
                item.due = now + retry_delay(item.failures)
                self._retries.append(item)


class _Calls:
    """``workers`` daemon threads running ``call`` on submitted batches, in order."""

    def __init__(self, call: Callable[[list[_Pending]], None], workers: int, name: str) -> None:
        self._call = call
        self._workers = max(workers, 1)
        self._name = name
        self._cond = threading.Condition()
        self._queue: deque[list[_Pending]] = deque()
        self._running: dict[int, int] = {}  # thread ident -> entries in its call
        self._threads = 0
        self._closed = False

    def submit(self, batch: list[_Pending]) -> None:
        with self._cond:
            self._queue.append(batch)
            idle = self._threads - len(self._running)
            if idle < len(self._queue) and self._threads < self._workers:
                self._threads += 1
                threading.Thread(
                    target=self._work, name=f"{self._name}-{self._threads}", daemon=True
                ).start()
            self._cond.notify()

    def busy(self) -> int:
        """Calls queued or in progress."""
        with self._cond:
            return len(self._queue) + len(self._running)

    def wait_idle(self, timeout: float) -> None:
        with self._cond:
            if self._queue or self._running:
                self._cond.wait(timeout)

    def close(self) -> int:
        """Stop the threads once their call returns; returns the entries not answered
        (queued calls are dropped, running ones abandoned to their daemon thread)."""
        with self._cond:
            self._closed = True
            unanswered = sum(len(b) for b in self._queue) + sum(self._running.values())
            self._queue.clear()
            self._cond.notify_all()
            return unanswered

    def _work(self) -> None:
        me = threading.get_ident()
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    self._threads -= 1
                    return
                batch = self._queue.popleft()
                self._running[me] = len(batch)
            try:
                self._call(batch)
            except Exception:  # the thread must survive
                logger.exception("%s call raised", self._name)
            finally:
                with self._cond:
                    del self._running[me]
                    self._cond.notify_all()
