"""What happens when a handler with a time limit is abandoned (called in the time-limit
ticker's thread, ``sqsx.timelimits``): the core decides ``TIMED_OUT``, the hooks hear of it,
then the runtime acts on it (settles the message, replaces the thread)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqsx.hooks import HookChain, Processing
from sqsx.message import Message
from sqsx.outcome import Outcome
from sqsx.timelimits import Guard

if TYPE_CHECKING:
    from sqsx.dispatch import Dispatcher

__all__ = ["Abandon", "AbandonFn"]

logger = logging.getLogger("sqsx.dispatch")  # the core's lines, whichever module writes them

#: Told when a handler is abandoned past its time limit: ``fn(message, outcome)``.
AbandonFn = Callable[[Message, Outcome], None]


class Abandon:
    """What happens when a guarded handler is abandoned (called in the ticker thread): the
    core decides ``TIMED_OUT``, the hooks hear of it, then the runtime acts on it."""

    __slots__ = ("chain", "dispatcher", "label", "message", "outcome", "processing", "runtime")

    def __init__(
        self,
        dispatcher: Dispatcher,
        message: Message,
        label: str,
        runtime: AbandonFn | None,
        chain: HookChain | None = None,
        processing: Processing | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.message = message
        self.label = label
        self.runtime = runtime
        self.chain = chain
        self.processing = processing
        self.outcome: Outcome | None = None

    @classmethod
    def of(
        cls,
        dispatcher: Dispatcher,
        message: Message,
        label: str,
        limit: float | None,
        runtime: AbandonFn | None,
        chain: HookChain | None = None,
        processing: Processing | None = None,
    ) -> Abandon | None:
        """The abandon step of a handler with a time limit; ``None`` without one (most
        handlers: nothing to build per message)."""
        if limit is None:
            return None
        return cls(dispatcher, message, label, runtime, chain, processing)

    def __call__(self, guard: Guard) -> None:
        guard.message_id, guard.task = self.message.message_id, self.label  # for overrun lines
        outcome = self.dispatcher.fates.timed_out(self.message, self.label, guard.limit)
        logger.warning(
            "handler still running %gs after its time limit: abandoned, its thread replaced "
            "message_id=%s task=%s queue_url=%s",
            self.dispatcher.time_limits.grace_seconds,
            self.message.message_id,
            self.label,
            self.dispatcher.queue_url,
        )
        if self.chain is not None and self.processing is not None:
            self.chain.after(self.processing, outcome)
        self.outcome = Outcome(
            outcome.verdict, outcome.retry_after, outcome.reason, outcome.handler_seconds, True
        )
        if self.runtime is not None:
            self.runtime(self.message, outcome)
