"""The polling engine's stop sequence (``Engine``'s, see there): stop receiving, release
what never started, wait for the running handlers (up to ``stop_timeout``), wait for the
receive in flight, then flush the deletes and visibility changes, each step bounded."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqsx.batching import BatchFlusher
from sqsx.inbox import Inbox
from sqsx.lanes import AsyncLane
from sqsx.message import Message
from sqsx.receiving import POLL_SLICE_SECONDS
from sqsx.visibility import VisibilityKeeper

if TYPE_CHECKING:
    from sqsx.options import ConsumeOptions

__all__ = ["Shutdown"]

logger = logging.getLogger("sqsx.engine")

#: Seconds the flushers get to send what is left, once the handlers are done.
_FLUSH_SECONDS = 10.0
#: Seconds beyond a poll slice that the receive in flight is waited for.
_RECEIVE_MARGIN_SECONDS = 5.0


class Shutdown:
    """The stop half of ``Engine`` (see there for the attributes it shares)."""

    _url: str
    _options: ConsumeOptions
    _stop: threading.Event
    _force: threading.Event
    _polling: threading.Event
    _timer_done: threading.Event
    _inbox: Inbox
    _keeper: VisibilityKeeper
    _deletes: BatchFlusher
    _lane: AsyncLane

    def _release(self, messages: Sequence[Message]) -> None:  # pragma: no cover - Engine's
        raise NotImplementedError

    def _shutdown(self, receivers: list[threading.Thread], threads: list[threading.Thread]) -> None:
        self._stop.set()
        self._polling.set()  # wake receivers parked on an idle queue
        self._lane.close()  # a message waiting for a coroutine slot is released unstarted
        self._release(self._inbox.close())
        options = self._options
        deadline = None if options.stop_timeout is None else time.monotonic() + options.stop_timeout
        if self._inbox.running and not self._force.is_set():
            logger.info(
                "waiting for %d running handler%s to finish%s; stop again (a second Ctrl-C or "
                "SIGTERM) to abandon them queue_url=%s",
                self._inbox.running,
                "" if self._inbox.running == 1 else "s",
                "" if options.stop_timeout is None else f" (up to {options.stop_timeout:g} s)",
                self._url,
            )
        if not self._inbox.wait_idle(deadline, self._force):
            self._lane.cancel_running(self._url)  # each made visible again at once
        if self._inbox.running:
            logger.warning(
                "stopping with %d handlers still running; their messages reappear once their "
                "visibility timeout ends queue_url=%s",
                self._inbox.running,
                self._url,
            )
            for message in self._keeper.held():
                self._keeper.let_go(message)
        # A long poll cannot be cut short, and one abandoned could still be handed a message
        # that would then stay hidden for the visibility timeout. So it is waited for (up to
        # one poll slice) and what it brings is released; a second stop request (``force``)
        # skips the wait.
        limit = time.monotonic() + POLL_SLICE_SECONDS + _RECEIVE_MARGIN_SECONDS
        if any(r.is_alive() for r in receivers) and not self._force.is_set():
            logger.debug(
                "waiting up to %ss for the receive in flight queue_url=%s",
                POLL_SLICE_SECONDS + _RECEIVE_MARGIN_SECONDS,
                self._url,
            )
        for receiver in receivers:
            while receiver.is_alive() and not self._force.is_set() and time.monotonic() < limit:
                receiver.join(0.05)
        abandoned = sum(r.is_alive() for r in receivers)
        self._timer_done.set()
        flush_deadline = time.monotonic() + _FLUSH_SECONDS
        deletes = self._deletes.close(flush_deadline, self._force)
        changes = self._keeper.close(flush_deadline, self._force)
        if deletes or changes or abandoned:
            logger.warning(
                "stopped without SQS confirming %d deletes and %d visibility changes, %d "
                "receives in flight abandoned; those messages are handled again after their "
                "visibility timeout queue_url=%s",
                deletes,
                changes,
                abandoned,
                self._url,
            )
        for thread in threads:
            thread.join(0.1)
