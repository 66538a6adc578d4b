"""The processing core: one message in, one ``Outcome`` out.

Both runtimes call ``Dispatcher.begin`` (``process`` is ``begin`` without a lane); neither
decides a message's fate itself. The polling engine turns an ``Outcome`` into
DeleteMessageBatch / ChangeMessageVisibilityBatch entries, the Lambda runtime into
``batchItemFailures`` entries.

``begin`` returns the ``Outcome``, or for an ``async def`` handler given the runtime's
``sqsx.lanes.AsyncLane`` a ``CoroutineRun`` (``sqsx.runs``) resolved in the loop's thread
when the coroutine ends (same ``Fates``); the caller settles it then.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqsx.abandon import Abandon, AbandonFn
from sqsx.aio import EventLoopThread
from sqsx.backoff import BackoffPolicy
from sqsx.exceptions import (
    HandlerResultError,
    TimeLimitExceeded,
    UnprocessableMessageError,
)
from sqsx.fates import Fates, PoisonPolicy
from sqsx.hooks import HookChain, Processing, Runtime
from sqsx.lanes import AsyncLane, CoroutineRun, is_async_handler
from sqsx.message import Message
from sqsx.outcome import Outcome, Verdict
from sqsx.plainlane import PLAIN_RESULTS, PlainLane
from sqsx.timelimits import Guard, GuardState, TimeLimits

__all__ = ["Dispatcher", "MessageHandler", "Outcome", "PoisonPolicy", "Verdict"]

logger = logging.getLogger("sqsx.dispatch")

#: A RawQueue handler: ``fn(queue_url, sqs_message)`` (``sqs_message`` is a dict).
MessageHandler = Callable[..., Any]


class Dispatcher:
    """Runs one message through its handler and maps what happened to an ``Outcome``.

    Every fate is decided here, for both runtimes: a handler that returns (a coroutine is
    run to completion first), raises ``NoRetry``, ``Retry``, any other ``Exception`` or any
    ``BaseException`` (``SystemExit``, ``KeyboardInterrupt``...: a handler cannot stop a
    worker that way; use ``exit_gracefully()``), a message that cannot be read, and a hook
    that fails to resolve a message. Nothing a message or a handler does escapes
    ``process``.

    Args:
        queue_url: the queue's URL, for handlers and logs.
        backoff: the queue's backoff policy.
        poison_policy: fate of messages that can never succeed (see ``PoisonPolicy``).
        hooks: the queue's hooks (see ``sqsx.hooks``).

    Attributes:
        hooks: the queue's ``HookChain``; runtimes pass their own, extended chain to
            ``process``.
    """

    def __init__(
        self,
        queue_url: str,
        backoff: BackoffPolicy,
        poison_policy: PoisonPolicy,
        hooks: HookChain | None = None,
        *,
        time_limit: float | None = None,
    ) -> None:
        self.queue_url = queue_url
        self.backoff = backoff
        self.poison_policy = poison_policy
        self.fates = Fates(queue_url, backoff, poison_policy)
        self.hooks = hooks if hooks is not None else HookChain()
        self.time_limit = time_limit
        #: Concurrency caps by task name (``sqsx.caps``); replaced whole, never mutated.
        self.task_caps: Mapping[str, int] = {}
        self.event_loop = EventLoopThread("sqsx-async")
        self.time_limits = TimeLimits()

    def process(
        self,
        message: Message,
        lambda_context: Any = None,
        *,
        runtime: Runtime = "worker",
        hooks: HookChain | None = None,
        on_abandon: AbandonFn | None = None,
        limit_cap: Callable[[], float | None] | None = None,
    ) -> Outcome:
        """Process ``message`` in the calling thread (a coroutine is run to completion);
        never raises for anything the message or handler does. See ``begin``."""
        outcome = self.begin(
            message, lambda_context, runtime=runtime, hooks=hooks, on_abandon=on_abandon,
            limit_cap=limit_cap,
        )  # fmt: skip
        return cast(Outcome, outcome)  # without a lane: always an Outcome

    def begin(
        self,
        message: Message,
        lambda_context: Any = None,
        *,
        runtime: Runtime = "worker",
        hooks: HookChain | None = None,
        on_abandon: AbandonFn | None = None,
        limit_cap: Callable[[], float | None] | None = None,
        lane: AsyncLane | None = None,
    ) -> Outcome | CoroutineRun:
        """Start processing ``message``; never raises for anything the message or handler
        does.

        Returns the ``Outcome``, or, for an ``async def`` handler given a ``lane``, a
        ``CoroutineRun`` (``sqsx.runs``) resolved in the event
        loop's thread once the coroutine is over (see ``sqsx.lanes``): the calling thread
        is free as soon as ``begin`` returns.

        Args:
            message: the received message.
            lambda_context: the Lambda context (handed to task handlers), if any.
            runtime: which runtime is asking, for hooks.
            hooks: the chain to run (default: the queue's own ``hooks``).
            on_abandon: called (from another thread) with the message and its ``TIMED_OUT``
                outcome if its handler is abandoned past its time limit: the runtime then
                applies that outcome and replaces the thread, whose own return value comes
                back later with ``Outcome.late`` set.
            limit_cap: returns the seconds the handler may run at most whatever its time
                limit (the Lambda runtime's deadline); asked only for a handler with one.
            lane: the runtime's async lane, if it has one.
        """
        chain = self.hooks if hooks is None else hooks
        received = message  # what the runtime holds, whatever ``resolve_message`` makes of it
        processing = (
            Processing(message, self.queue_url, runtime, lambda_context=lambda_context)
            if chain.observes
            else None
        )
        try:
            if chain.resolves:
                message = chain.resolve(message)
                if processing is not None:
                    processing.message = message
            call, label, limit = self._prepare(message, lambda_context)
        except Exception as err:
            outcome = self.fates.unreadable(message, err)
            if processing is not None:
                chain.before(processing)
                chain.after(processing, outcome)
            return outcome
        if limit is not None and limit_cap is not None:
            cap = limit_cap()
            limit = limit if cap is None else max(min(limit, cap), 0.0)
        if lane is not None and is_async_handler(call):  # hooks run on the loop, in its task
            if processing is not None:
                processing.task, processing.time_limit = label, limit
            run = CoroutineRun(call, message, label, limit, self.fates, chain, processing, received)
            return lane.start(run)
        if processing is None:
            return self._run(
                call, message, label, limit, Abandon.of(self, message, label, limit, on_abandon)
            )
        processing.task, processing.time_limit = label, limit
        chain.before(processing)
        abandon = Abandon.of(self, message, label, limit, on_abandon, chain, processing)
        outcome = self._run(call, message, label, limit, abandon)
        if not outcome.late:
            chain.after(processing, outcome)
        return outcome

    def has_async_handlers(self) -> bool:
        """True when an ``async def`` handler is registered (runtimes size receiving for
        the async lane then)."""
        return False

    def predecode(self, messages: Sequence[Message]) -> None:
        """Decode ``messages`` ahead of processing, where the message type allows it, so
        that a handler thread's turn starts with the handler (see ``Message.decoded_task``).
        Only for messages no hook resolves; never raises: what cannot be decoded now is
        decoded again, and judged, when the message is processed."""

    def plain_lane(self, hooks: HookChain | None = None) -> PlainLane | None:
        """``begin`` in one pass (``sqsx.plainlane``), while nothing runs around a handler:
        ``None`` when ``hooks`` observe or resolve messages, a time limit or a concurrency
        cap is set, or an ``async def`` handler is registered. Ask again per batch."""
        chain = self.hooks if hooks is None else hooks
        if chain.observes or chain.resolves or self.time_limit is not None or self.task_caps:
            return None
        return None if self.has_async_handlers() else self._plain_lane()

    def _plain_lane(self) -> PlainLane | None:
        return None

    def refuse(
        self,
        message: Message,
        err: UnprocessableMessageError,
        *,
        runtime: Runtime = "worker",
        hooks: HookChain | None = None,
    ) -> Outcome:
        """The outcome of a message a runtime could not even read (a malformed Lambda
        record, say), through the hooks like any other."""
        chain = self.hooks if hooks is None else hooks
        outcome = self.unprocessable(message, err)
        if chain.observes:
            processing = Processing(message, self.queue_url, runtime)
            chain.before(processing)
            chain.after(processing, outcome)
        return outcome

    def _prepare(
        self, message: Message, lambda_context: Any
    ) -> tuple[Callable[[], object], str, float | None]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run(
        self,
        call: Callable[[], object],
        message: Message,
        label: str,
        limit: float | None,
        abandon: Abandon | None,
    ) -> Outcome:
        started = time.perf_counter()
        guard = None if limit is None or abandon is None else self.time_limits.arm(limit, abandon)
        err = self._invoke(call, guard)
        if guard is not None:
            state = self.time_limits.disarm(guard)  # again: the first may have been cut short
            if state is GuardState.ABANDONED:
                late = abandon.outcome if abandon is not None else None
                return late or self.fates.timed_out(message, label, guard.limit, late=True)
            if state is GuardState.INTERRUPTED or isinstance(err, TimeLimitExceeded):
                elapsed = time.perf_counter() - started
                return self.fates.timed_out(message, label, guard.limit, elapsed)
        return self.fates.handled(message, label, err, time.perf_counter() - started)

    def _invoke(self, call: Callable[[], object], guard: Guard | None) -> BaseException | None:
        """Call the handler (and finish what it returned); what it raised, or ``None``.

        The guard is disarmed before anything else runs, so that a time limit's exception
        can only land inside this ``try``.
        """
        try:
            try:
                result = call()
                if result is not None and not isinstance(result, PLAIN_RESULTS):
                    self._finish(result, guard)
            finally:
                if guard is not None:
                    self.time_limits.disarm(guard)
        except BaseException as err:
            return err
        return None

    def _finish(self, result: object, guard: Guard | None) -> None:
        """Run what a handler returned if it is awaitable (within its time limit: the
        waiting thread cannot be interrupted, the coroutine is cancelled instead); refuse a
        generator, whose body would otherwise never run."""
        if inspect.isawaitable(result):
            timeout = None if guard is None else max(guard.deadline - time.monotonic(), 0.0)
            self.event_loop.run(result, timeout)
        elif inspect.isgenerator(result) or inspect.isasyncgen(result):
            raise HandlerResultError(
                f"the handler returned a {type(result).__name__}: its body never ran "
                "(handlers are plain or async def functions, not generators)"
            )

    def unprocessable(self, message: Message, err: UnprocessableMessageError) -> Outcome:
        """The outcome of a message no handler can take, per ``poison_policy`` (and its log
        line)."""
        return self.fates.unprocessable(message, err)
