"""The processing core: one message in, one ``Outcome`` out.

Both runtimes call ``Dispatcher.process``; neither decides a message's fate itself. The
polling engine turns an ``Outcome`` into DeleteMessageBatch / ChangeMessageVisibilityBatch
entries, the Lambda runtime into ``batchItemFailures`` entries.
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqsx.aio import EventLoopThread
from sqsx.backoff import BackoffPolicy
from sqsx.codec import decode_task
from sqsx.exceptions import (
    HandlerResultError,
    NoRetry,
    Retry,
    UnknownTaskError,
    UnprocessableMessageError,
)
from sqsx.hooks import HookChain, Processing, Runtime
from sqsx.message import Message
from sqsx.registry import HandlerRegistry
from sqsx.signature import signature_of

__all__ = [
    "Dispatcher",
    "Outcome",
    "PoisonPolicy",
    "RawDispatcher",
    "TaskDispatcher",
    "Verdict",
]

logger = logging.getLogger("sqsx.dispatch")

#: What to do with a message that can never succeed (undecodable, unknown task, bad kwargs):
#: ``"retry"`` backs it off until the redrive policy dead-letters it; ``"delete"`` drops it
#: at once with an ERROR line.
PoisonPolicy = Literal["retry", "delete"]

# What handlers usually return: not awaitable, no need to look closer.
_PLAIN_RESULTS = (str, bytes, int, float, bool, dict, list, tuple)

#: A RawQueue handler: ``fn(queue_url, sqs_message)`` (``sqs_message`` is a dict).
MessageHandler = Callable[..., Any]


class Verdict(enum.Enum):
    """Why a message got its outcome."""

    SUCCEEDED = "succeeded"
    NO_RETRY = "no_retry"
    RETRIED = "retried"
    UNPROCESSABLE = "unprocessable"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The fate of one message.

    Attributes:
        verdict: why.
        retry_after: ``None`` to delete the message, else the seconds it stays invisible
            before SQS delivers it again.
        reason: a short text for logs and tests; never the message body.
        handler_seconds: how long the handler ran (0 when it did not run).
    """

    verdict: Verdict
    retry_after: int | None
    reason: str = ""
    handler_seconds: float = 0.0

    @property
    def delete(self) -> bool:
        """True when the message is done with and must be deleted."""
        return self.retry_after is None


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
    ) -> None:
        self.queue_url = queue_url
        self.backoff = backoff
        self.poison_policy = poison_policy
        self.hooks = hooks if hooks is not None else HookChain()
        self.event_loop = EventLoopThread("sqsx-async")

    def process(
        self,
        message: Message,
        lambda_context: Any = None,
        *,
        runtime: Runtime = "worker",
        hooks: HookChain | None = None,
    ) -> Outcome:
        """Process ``message``; never raises for anything the message or handler does.

        Args:
            message: the received message.
            lambda_context: the Lambda context (handed to task handlers), if any.
            runtime: which runtime is asking, for hooks.
            hooks: the chain to run (default: the queue's own ``hooks``).
        """
        chain = self.hooks if hooks is None else hooks
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
            call, label = self._prepare(message, lambda_context)
        except Exception as err:
            outcome = self._unreadable(message, err)
            if processing is not None:
                chain.before(processing)
                chain.after(processing, outcome)
            return outcome
        if processing is None:
            return self._run(call, message, label)
        processing.task = label
        chain.before(processing)
        outcome = self._run(call, message, label)
        chain.after(processing, outcome)
        return outcome

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
    ) -> tuple[Callable[[], object], str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run(self, call: Callable[[], object], message: Message, label: str) -> Outcome:
        started = time.perf_counter()
        try:
            result = call()
            if result is not None and not isinstance(result, _PLAIN_RESULTS):
                self._finish(result)
        except NoRetry:
            elapsed = time.perf_counter() - started
            logger.info(
                "NoRetry raised, deleting message_id=%s task=%s queue_url=%s",
                message.message_id,
                label,
                self.queue_url,
            )
            return Outcome(Verdict.NO_RETRY, None, "NoRetry raised", elapsed)
        except Retry as signal:
            elapsed = time.perf_counter() - started
            policy = self.backoff.overridden(signal.min_backoff_seconds, signal.max_backoff_seconds)
            delay = policy.delay(message.receive_count)
            logger.info(
                "Retry raised, retrying in %ss message_id=%s task=%s receive_count=%s queue_url=%s",
                delay,
                message.message_id,
                label,
                message.receive_count,
                self.queue_url,
            )
            return Outcome(Verdict.RETRIED, delay, "Retry raised", elapsed)
        except Exception as err:
            return self._failed(message, label, err, started, logging.WARNING)
        except BaseException as err:  # SystemExit, KeyboardInterrupt...: never the worker's
            return self._failed(message, label, err, started, logging.ERROR)
        return Outcome(Verdict.SUCCEEDED, None, "", time.perf_counter() - started)

    def _finish(self, result: object) -> None:
        """Run what a handler returned if it is awaitable; refuse a generator, whose body
        would otherwise never run."""
        if inspect.isawaitable(result):
            self.event_loop.run(result)
        elif inspect.isgenerator(result) or inspect.isasyncgen(result):
            raise HandlerResultError(
                f"the handler returned a {type(result).__name__}: its body never ran "
                "(handlers are plain or async def functions, not generators)"
            )

    def _failed(
        self, message: Message, label: str, err: BaseException, started: float, level: int
    ) -> Outcome:
        elapsed = time.perf_counter() - started
        delay = self.backoff.delay(message.receive_count)
        kind = type(err).__name__
        hint = "" if level < logging.ERROR else " (a BaseException: it does not stop the worker)"
        logger.log(
            level,
            "handler raised %s%s, retrying in %ss message_id=%s task=%s receive_count=%s "
            "queue_url=%s",
            kind,
            hint,
            delay,
            message.message_id,
            label,
            message.receive_count,
            self.queue_url,
            exc_info=True,
        )
        return Outcome(Verdict.RETRIED, delay, f"handler raised {kind}", elapsed)

    def _unreadable(self, message: Message, err: Exception) -> Outcome:
        """The outcome of a message that failed before its handler: unprocessable, or a
        passing failure (a hook could not fetch its payload, say) retried with backoff."""
        if isinstance(err, UnprocessableMessageError):
            return self.unprocessable(message, err)
        delay = self.backoff.delay(message.receive_count)
        logger.warning(
            "could not prepare the message (%s), retrying in %ss message_id=%s task=%s "
            "receive_count=%s queue_url=%s",
            type(err).__name__,
            delay,
            message.message_id,
            _task_name_or_dash(message),
            message.receive_count,
            self.queue_url,
            exc_info=True,
        )
        return Outcome(Verdict.RETRIED, delay, f"preparing raised {type(err).__name__}")

    def unprocessable(self, message: Message, err: UnprocessableMessageError) -> Outcome:
        """The outcome of a message no handler can take, per ``poison_policy`` (and its log
        line); runtimes call it for messages they cannot even read."""
        reason = f"{type(err).__name__}: {err}"
        task = _task_name_or_dash(message)
        if self.poison_policy == "delete":
            logger.error(
                "unprocessable message deleted (poison_policy=delete) message_id=%s task=%s "
                "reason=%s queue_url=%s",
                message.message_id,
                task,
                reason,
                self.queue_url,
            )
            return Outcome(Verdict.UNPROCESSABLE, None, reason)
        delay = self.backoff.delay(message.receive_count)
        logger.warning(
            "unprocessable message, retrying in %ss until the redrive policy dead-letters it "
            "message_id=%s task=%s reason=%s receive_count=%s queue_url=%s",
            delay,
            message.message_id,
            task,
            reason,
            message.receive_count,
            self.queue_url,
        )
        return Outcome(Verdict.UNPROCESSABLE, delay, reason)


def _task_name_or_dash(message: Message) -> str:
    """The TaskName attribute for log lines, whatever shape it came in; ``-`` if none."""
    attribute = (message.raw.get("MessageAttributes") or {}).get("TaskName")
    value = attribute.get("StringValue") if isinstance(attribute, Mapping) else None
    return value[:200] if isinstance(value, str) and value else "-"


class TaskDispatcher(Dispatcher):
    """Routes a task message to ``registry[TaskName]`` as ``fn(context, **kwargs)``."""

    def __init__(
        self,
        queue_url: str,
        backoff: BackoffPolicy,
        poison_policy: PoisonPolicy,
        registry: HandlerRegistry,
        hooks: HookChain | None = None,
    ) -> None:
        super().__init__(queue_url, backoff, poison_policy, hooks)
        self.registry = registry

    def _prepare(self, message: Message, lambda_context: Any) -> tuple[Callable[[], object], str]:
        task = decode_task(message.raw.get("Body"), message.raw.get("MessageAttributes"))
        handler = self.registry.get(task.name)
        if handler is None:
            raise UnknownTaskError(f"no handler registered for task {task.name!r}")
        context: dict[str, Any] = {
            "queue_url": self.queue_url,
            "task_name": task.name,
            "sqs_message": message.raw,
        }
        if lambda_context is not None:
            context["lambda_context"] = lambda_context
        kwargs = signature_of(handler).bind(task.name, task.kwargs)
        return functools.partial(handler, context, **kwargs), task.name


class RawDispatcher(Dispatcher):
    """Hands every message to one handler as ``fn(queue_url, sqs_message)``."""

    def __init__(
        self,
        queue_url: str,
        backoff: BackoffPolicy,
        poison_policy: PoisonPolicy,
        handler: MessageHandler,
        hooks: HookChain | None = None,
    ) -> None:
        super().__init__(queue_url, backoff, poison_policy, hooks)
        self.handler = handler

    def _prepare(self, message: Message, lambda_context: Any) -> tuple[Callable[[], object], str]:
        return functools.partial(self.handler, self.queue_url, message.raw), "<raw>"
