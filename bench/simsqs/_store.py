"""One simulated queue's messages and their states, with O(log n) work per operation."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.simsqs._wire import (
    MAX_DELAY_SECONDS,
    MAX_VISIBILITY_SECONDS,
    QUEUE_DEFAULTS,
    attributes_md5,
    bad_handle,
    body_md5,
    invalid,
    message_bytes,
    out_of_range,
)

# Receipt handles: unique per receive; a counter after a random prefix costs no urandom call
# per message (the simulator's CPU competes with the client's for one GIL in the benchmarks).
_HANDLE_PREFIX = uuid.uuid4().hex[:12]
_HANDLE_NUMBERS = itertools.count()

# message states; _GONE: deleted, dead-lettered, or not yet counted
_READY, _IN_FLIGHT, _DELAYED, _GONE = range(4)

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class QueueReport:
    """What happened to one queue's messages since it was created.

    Attributes:
        sent: messages sent (dead-lettered messages arriving from another queue included).
        deleted: messages deleted.
        deliveries: messages handed out by ReceiveMessage, repeats included.
        dead_lettered: messages moved from this queue to its dead-letter queue.
        visible / in_flight / delayed: messages in the queue now, by state.
        deliveries_by_message: deliveries per message id (deleted messages included).
        deleted_messages: ids of the deleted messages.
    """

    sent: int
    deleted: int
    deliveries: int
    dead_lettered: int
    visible: int
    in_flight: int
    delayed: int
    deliveries_by_message: Mapping[str, int]
    deleted_messages: frozenset[str]

    @property
    def redelivered(self) -> int:
        """Messages delivered more than once."""
        return sum(1 for count in self.deliveries_by_message.values() if count > 1)

    @property
    def duplicate_deliveries(self) -> int:
        """Deliveries beyond the first of each message."""
        return self.deliveries - len(self.deliveries_by_message)


class Message:
    """A stored message; ``version`` changes with every state change, which voids the heap
    entries made before it."""

    __slots__ = (
        "attributes",
        "attributes_md5",
        "body",
        "first_receive_ms",
        "handle",
        "md5",
        "message_id",
        "receive_count",
        "received_at",
        "sent_ms",
        "seq",
        "state",
        "version",
    )

    def __init__(self, message_id: str, body: str, attributes: dict[str, Any], sent_ms: int):
        self.message_id = message_id
        self.body = body
        self.attributes = attributes
        self.md5 = body_md5(body)
        # computed once, as SQS does on SendMessage (a receive of every attribute reuses it)
        self.attributes_md5 = attributes_md5(attributes) if attributes else None
        self.sent_ms = sent_ms
        self.seq = 0
        self.receive_count = 0
        self.first_receive_ms = 0
        self.received_at = 0.0
        self.handle = ""
        self.state = _GONE
        self.version = 0


class SimQueue:
    """A standard queue. Visible messages wait in a heap ordered by send order; hidden ones
    (in flight or delayed) in a heap ordered by the time they turn visible. Both are voided
    lazily: an entry counts only while its version is the message's version.

    Public methods take ``cond``; ``now`` is the simulated monotonic clock.
    """

    def __init__(self, name: str, url: str, arn: str, attributes: dict[str, str], now: Clock):
        self.name, self.url, self.arn = name, url, arn
        self.attributes = {**QUEUE_DEFAULTS, **attributes}
        self.created = time.time()
        self.cond = threading.Condition()
        self.closed = False
        self._now = now
        self._messages: dict[str, Message] = {}
        self._handles: dict[str, str] = {}  # every handle ever issued -> message id
        self._ready: list[tuple[int, int, Message]] = []
        self._hidden: list[tuple[float, int, int, Message]] = []
        self._counts = [0, 0, 0]
        self._seq = 0
        self._sent = self._deleted = self._deliveries = self._dead_lettered = 0
        self._deliveries_by_message: dict[str, int] = {}
        self._deleted_messages: set[str] = set()

    def setting(self, name: str) -> int:
        return int(self.attributes[name])

    def put(self, body: str, attributes: dict[str, Any], delay: int | None) -> Message:
        """Store a new message; refuses it when too large or ``delay`` is out of bounds."""
        with self.cond:
            delay = self.setting("DelaySeconds") if delay is None else delay
            if not 0 <= delay <= MAX_DELAY_SECONDS:
                raise out_of_range("DelaySeconds", delay, 0, MAX_DELAY_SECONDS)
            limit = self.setting("MaximumMessageSize")
            if message_bytes(body, attributes) > limit:
                raise invalid(
                    "One or more parameters are invalid. Reason: Message must be shorter "
                    f"than {limit} bytes."
                )
            message = Message(str(uuid.uuid4()), body, attributes, int(time.time() * 1000))
            self._add(message, delay)
            return message

    def adopt(self, moved: Message) -> None:
        """Take in a message dead-lettered by another queue: id and receive count kept."""
        with self.cond:
            message = Message(moved.message_id, moved.body, moved.attributes, moved.sent_ms)
            message.receive_count = moved.receive_count
            message.first_receive_ms = moved.first_receive_ms
            self._add(message, 0)

    def receive(
        self, count: int, visibility: int, wait: float, max_receives: int | None
    ) -> tuple[list[tuple[Message, str, int]], list[Message]]:
        """Up to ``count`` visible messages, each now hidden for ``visibility`` seconds, as
        (message, receipt handle, receive count); waits up to ``wait`` seconds for one.
        Also returns the messages removed for the dead-letter queue (received
        ``max_receives`` times already)."""
        deadline = time.monotonic() + wait
        with self.cond:
            while True:
                taken, doomed = self._take(count, visibility, max_receives)
                remaining = deadline - time.monotonic()
                if taken or doomed or self.closed or remaining <= 0:
                    return taken, doomed
                if self._hidden:
                    remaining = min(remaining, max(self._hidden[0][0] - self._now(), 0.001))
                self.cond.wait(remaining)

    def delete(self, handle: str) -> None:
        """Delete by any handle the message had; a deleted message's handle is accepted."""
        with self.cond:
            message_id = self._handles.get(handle)
            if message_id is None:
                raise bad_handle()
            message = self._messages.get(message_id)
            if message is None:
                return
            self._forget(message)
            self._deleted += 1
            self._deleted_messages.add(message_id)

    def change(self, handle: str, seconds: int) -> None:
        """Hide the message for ``seconds`` from now (0: visible at once). A handle older than
        the message's latest receive is accepted and ignored, as SQS does."""
        if not 0 <= seconds <= MAX_VISIBILITY_SECONDS:
            raise out_of_range("VisibilityTimeout", seconds, 0, MAX_VISIBILITY_SECONDS)
        with self.cond:
            message_id = self._handles.get(handle)
            if message_id is None:
                raise bad_handle()
            message = self._messages.get(message_id)
            if message is None or message.state == _DELAYED:
                raise invalid(
                    f"Value {handle} for parameter ReceiptHandle is invalid. Reason: Message "
                    "does not exist or is not available for visibility timeout change."
                )
            if handle != message.handle:
                return
            now = self._now()
            if now + seconds - message.received_at > MAX_VISIBILITY_SECONDS:
                raise invalid(
                    f"Value {seconds} for parameter VisibilityTimeout is invalid. Reason: Total "
                    f"VisibilityTimeout for the message is beyond the limit "
                    f"[{MAX_VISIBILITY_SECONDS} seconds]"
                )
            self._move(message, _IN_FLIGHT if seconds else _READY, now + seconds)
            if not seconds:
                self.cond.notify_all()

    def purge(self) -> None:
        """Remove every message."""
        with self.cond:
            for message in list(self._messages.values()):
                self._forget(message)
            self._ready.clear()
            self._hidden.clear()

    def close(self) -> None:
        """The queue was deleted: waiting receives return empty."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wake(self) -> None:
        """The clock jumped: waiting receives look again."""
        with self.cond:
            self.cond.notify_all()

    def counts(self) -> tuple[int, int, int]:
        """(visible, in flight, delayed) messages now."""
        with self.cond:
            self._reveal()
            return self._counts[_READY], self._counts[_IN_FLIGHT], self._counts[_DELAYED]

    def report(self) -> QueueReport:
        """Sends, deliveries and deletes so far, and the counts now."""
        with self.cond:
            visible, in_flight, delayed = self.counts()
            return QueueReport(
                sent=self._sent,
                deleted=self._deleted,
                deliveries=self._deliveries,
                dead_lettered=self._dead_lettered,
                visible=visible,
                in_flight=in_flight,
                delayed=delayed,
                deliveries_by_message=dict(self._deliveries_by_message),
                deleted_messages=frozenset(self._deleted_messages),
            )

    # -- with ``cond`` held -----------------------------------------------------------------

    def _add(self, message: Message, delay: int) -> None:
        self._seq += 1
        message.seq = self._seq
        self._messages[message.message_id] = message
        self._sent += 1
        self._move(message, _DELAYED if delay else _READY, self._now() + delay)
        self.cond.notify_all()

    def _take(
        self, count: int, visibility: int, max_receives: int | None
    ) -> tuple[list[tuple[Message, str, int]], list[Message]]:
        self._reveal()
        now = self._now()
        taken: list[tuple[Message, str, int]] = []
        doomed: list[Message] = []
        while self._ready and len(taken) < count:
            _, version, message = heapq.heappop(self._ready)
            if version != message.version:
                continue
            if max_receives is not None and message.receive_count >= max_receives:
                self._forget(message)
                self._dead_lettered += 1
                doomed.append(message)
                continue
            message.receive_count += 1
            message.received_at = now
            if not message.first_receive_ms:
                message.first_receive_ms = int(time.time() * 1000)
            message.handle = f"{message.message_id}#{_HANDLE_PREFIX}{next(_HANDLE_NUMBERS):x}"
            self._handles[message.handle] = message.message_id
            self._move(message, _IN_FLIGHT, now + visibility)
            self._deliveries += 1
            self._deliveries_by_message[message.message_id] = message.receive_count
            taken.append((message, message.handle, message.receive_count))
        return taken, doomed

    def _move(self, message: Message, state: int, visible_at: float) -> None:
        if message.state != _GONE:
            self._counts[message.state] -= 1
        self._counts[state] += 1
        message.state = state
        message.version += 1
        if state == _READY:
            heapq.heappush(self._ready, (message.seq, message.version, message))
        else:
            heapq.heappush(self._hidden, (visible_at, message.seq, message.version, message))
        if len(self._hidden) + len(self._ready) > 2 * len(self._messages) + 1024:
            self._compact()

    def _forget(self, message: Message) -> None:
        self._counts[message.state] -= 1
        message.state = _GONE
        message.version += 1
        del self._messages[message.message_id]

    def _reveal(self) -> None:
        now = self._now()
        while self._hidden and self._hidden[0][0] <= now:
            _, _, version, message = heapq.heappop(self._hidden)
            if version == message.version:
                self._move(message, _READY, now)

    def _compact(self) -> None:
        self._ready = [e for e in self._ready if e[1] == e[2].version]
        self._hidden = [e for e in self._hidden if e[2] == e[3].version]
        heapq.heapify(self._ready)
        heapq.heapify(self._hidden)
