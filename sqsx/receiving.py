"""The polling engine's receivers: ReceiveMessage calls, their errors, how many run, and
when nothing more will come (drained, idle).

A mixin of ``sqsx.engine.Engine``, kept apart so that each file holds one concern: here,
what comes in; there, the handler threads, the acks and the stop sequence.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqsx.batching import BatchFlusher
from sqsx.exceptions import QueueUnavailableError
from sqsx.inbox import Inbox
from sqsx.limits import RunLimits
from sqsx.message import Message
from sqsx.ordering import Hold
from sqsx.sqs import (
    SqsClient,
    describe_error,
    error_code,
    is_bad_credentials,
    is_missing_queue,
    is_permanent,
    is_sqs_error,
    read_depth,
)
from sqsx.stats import Stats
from sqsx.visibility import VisibilityKeeper

if TYPE_CHECKING:
    from sqsx.dispatch import Dispatcher
    from sqsx.hooks import HookChain
    from sqsx.options import ConsumeOptions

__all__ = ["Receiving"]

logger = logging.getLogger("sqsx.engine")

_ERROR_BACKOFF_FIRST = 0.5
_ERROR_BACKOFF_CAP = 20.0
# Receives long-poll in slices of at most this many seconds (SQS takes whole seconds), so a
# stop never waits long for the receive in flight: a long poll cannot be cut short, and
# one abandoned could still take a message that would then stay hidden.
POLL_SLICE_SECONDS = 1
# While draining, the pause after an empty slice, in which the drain check can end the run.
_DRAIN_PAUSE_SECONDS = 0.5
_DEFAULT_VISIBILITY_TIMEOUT = 30


class Receiving:
    """The receiving half of ``Engine`` (see there for the attributes it shares)."""

    _client: SqsClient
    _url: str
    _options: ConsumeOptions
    _stats: Stats
    _stop: threading.Event
    _polling: threading.Event
    _inbox: Inbox
    _keeper: VisibilityKeeper
    _limits: RunLimits
    _fatal: BaseException | None
    _hand_limit: int
    _visibility_timeout: int
    _deletes: BatchFlusher
    _next_drain_check: float
    _dispatcher_async: bool  # an ``async def`` handler: its coroutines need messages too
    _dispatcher: Dispatcher
    _hooks: HookChain
    _decode_ahead: bool  # decode task bodies as they arrive (``Dispatcher.predecode``)

    def _release(self, messages: Sequence[Message]) -> None:  # pragma: no cover - Engine's
        raise NotImplementedError

    def _hold_back(self, held: Sequence[Hold[Message]]) -> None:  # pragma: no cover
        raise NotImplementedError

    def _receiver_count(self) -> int:
        """Receivers: one serial receiver brings one batch per call latency, so with more
        threads than a batch it starves them. Twice threads / batch: a call takes longer
        than its network latency once the process is busy (at 32 threads x 10 ms, 1.25 x
        left handler threads waiting on an empty inbox); the extra ones cost nothing on an
        idle queue, where only the first receiver polls. With ``async def`` handlers,
        ``max_async`` counts too."""
        options = self._options
        if options.receivers is not None:
            return options.receivers
        busy = options.max_threads + (options.max_async if self._dispatcher_async else 0)
        if busy == 1:
            return 1
        return max(1, min(8, math.ceil(2 * busy / options.max_messages)))

    def _queue_visibility_timeout(self) -> int:
        try:
            response = self._client.get_queue_attributes(
                QueueUrl=self._url, AttributeNames=["VisibilityTimeout"]
            )
            timeout = int(response["Attributes"]["VisibilityTimeout"])
        except Exception as err:
            if is_missing_queue(err) or is_bad_credentials(err):
                raise QueueUnavailableError(
                    f"SQS refused {self._url}: {describe_error(err)}"
                ) from err
            # e.g. a role without sqs:GetQueueAttributes: consuming may still be allowed
            logger.warning(
                "could not read VisibilityTimeout (%s), assuming %ss%s queue_url=%s",
                describe_error(err),
                _DEFAULT_VISIBILITY_TIMEOUT,
                "; pass visibility_timeout to set it" if is_permanent(err) else "",
                self._url,
            )
            return _DEFAULT_VISIBILITY_TIMEOUT
        if timeout < 1:  # 0 would hand running messages to our own receivers again
            logger.warning(
                "queue VisibilityTimeout is %ss; receiving with %ss instead queue_url=%s",
                timeout,
                _DEFAULT_VISIBILITY_TIMEOUT,
                self._url,
            )
            return _DEFAULT_VISIBILITY_TIMEOUT
        return timeout

    def _redrive_limit(self) -> int | None:
        """The queue's redrive ``maxReceiveCount`` (``0``: no redrive policy), or ``None``
        if it cannot be read: how often a capped task's backlog may be given back."""
        try:
            response = self._client.get_queue_attributes(
                QueueUrl=self._url, AttributeNames=["RedrivePolicy"]
            )
            policy = response.get("Attributes", {}).get("RedrivePolicy")
            return int(json.loads(policy)["maxReceiveCount"]) if policy else 0
        except Exception as err:
            logger.warning(
                "could not read RedrivePolicy (%s): a capped task's backlog is held in the "
                "worker, never given back queue_url=%s",
                describe_error(err),
                self._url,
            )
            return None

    # -- receiving ---------------------------------------------------------------------------

    def _receive_loop(self, index: int) -> None:
        options = self._options
        failures = 0
        idle = 0  # seconds of empty long polls since the last message or pause
        wait = min(options.polling_wait_seconds, POLL_SLICE_SECONDS)
        while not self._stop.is_set() and not self._limits.spent():
            # Only the first receiver long-polls an idle queue; the others join in once
            # messages flow, so an empty queue costs one receive per poll slice (1 s).
            if index and not self._polling.wait(0.5):
                continue
            if not self._inbox.reserve(self._options.max_messages, self._hand_limit):
                return
            wanted = self._limits.take(self._options.max_messages)
            if not wanted:  # max_messages_total reached: this receiver is done
                self._inbox.put((), reserved=self._options.max_messages)
                logger.info(
                    "received max_messages_total, receiving no more queue_url=%s", self._url
                )
                return
            try:
                got = self._receive(reserved=options.max_messages, wait_seconds=wait, wanted=wanted)
            except Exception as err:
                self._inbox.put((), reserved=options.max_messages)
                self._limits.give_back(wanted)
                failures += 1
                if self._receive_failed(err, failures):
                    return
                continue
            failures = 0
            self._limits.give_back(wanted - got)
            if got:
                idle = 0
                self._polling.set()
                continue
            self._polling.clear()
            idle += wait
            if idle >= options.polling_wait_seconds:  # a whole polling period came up empty
                idle = 0
                if options.wait_seconds:
                    self._stop.wait(options.wait_seconds)
            elif options.drain:
                self._stop.wait(_DRAIN_PAUSE_SECONDS)

    def _receive_once(self) -> None:
        try:
            self._receive(reserved=0, wait_seconds=self._options.polling_wait_seconds)
        except Exception as err:
            self._receive_failed(err, 1, wait=False)

    def _receive(self, reserved: int, wait_seconds: int, wanted: int | None = None) -> int:
        """One ReceiveMessage call for up to ``wanted`` messages (default ``max_messages``),
        long-polling ``wait_seconds``, against a reservation of ``reserved``; queues what
        came (and frees the reservation) and returns how many."""
        wanted = wanted or self._options.max_messages
        response = self._client.receive_message(
            QueueUrl=self._url,
            MaxNumberOfMessages=wanted,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=self._visibility_timeout,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = [Message.from_boto3(raw) for raw in response.get("Messages") or ()]
        if messages:
            self._limits.active()
        for message in messages:
            self._keeper.hold(message)
        if messages and self._decode_ahead:  # (not when a hook resolves: a new body)
            self._dispatcher.predecode(messages)
        if messages:
            self._stats.received(len(messages))
        else:
            logger.debug("no message received queue_url=%s", self._url)
        held = self._inbox.put(messages, reserved=reserved)
        if held is None:
            self._release(messages)
        else:
            self._hold_back(held)
        return len(messages)

    def _receive_failed(self, err: BaseException, failures: int, *, wait: bool = True) -> bool:
        """Log a failed receive (and back off, with ``wait``); ``True`` when the error is
        permanent and the run must end."""
        if is_permanent(err):
            logger.error(
                "SQS refused ReceiveMessage: %s; stopping queue_url=%s",
                describe_error(err),
                self._url,
            )
            self._fatal = err
            self._stop.set()
            return True
        delay = min(_ERROR_BACKOFF_FIRST * 2 ** (failures - 1), _ERROR_BACKOFF_CAP)
        logger.warning(
            "ReceiveMessage failed: %s%s (failure %d in a row) queue_url=%s",
            describe_error(err),
            f", retrying in {delay:.1f}s" if wait else "",
            failures,
            self._url,
            exc_info=not is_sqs_error(err) or logger.isEnabledFor(logging.DEBUG),
        )
        if wait:
            self._stop.wait(delay)
        return False

    # -- when nothing more comes -------------------------------------------------------

    def _drained(self) -> bool:
        """With ``drain``: the last receive was empty, nothing is held or pending, and SQS
        reports no visible, in-flight or delayed message (read at most once a second)."""
        now = time.monotonic()
        if not self._options.drain or self._polling.is_set() or now < self._next_drain_check:
            return False
        if self._inbox.in_hand() or self._deletes.pending() or self._keeper.pending():
            return False
        self._next_drain_check = now + 1.0  # a depth read at most once a second
        try:
            depth = read_depth(self._client, self._url)
        except Exception as err:
            logger.warning(
                "could not read queue depth: %s queue_url=%s", error_code(err), self._url
            )
            return False
        if depth.total:
            return False
        logger.info("queue drained, stopping queue_url=%s", self._url)
        return True

    def _idle(self) -> bool:
        """With ``exit_when_idle_seconds``: nothing was received or held for that long."""
        busy = bool(self._inbox.in_hand() or self._deletes.pending() or self._keeper.pending())
        if not self._limits.idle_expired(busy=busy):
            return False
        logger.info(
            "idle for %ss, stopping queue_url=%s", self._options.exit_when_idle_seconds, self._url
        )
        return True
