"""The processing core: one message in, one ``Outcome`` out.

Both runtimes call ``Dispatcher.process``; neither decides a message's fate itself. The
polling engine turns an ``Outcome`` into DeleteMessageBatch / ChangeMessageVisibilityBatch
entries, the Lambda runtime into ``batchItemFailures`` entries.
"""

from __future__ import annotations

import enum
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqsx.backoff import BackoffPolicy
from sqsx.clip import clip, shown
from sqsx.codec import decode_task
from sqsx.exceptions import (
    NoRetry,
    Retry,
    UnknownTaskError,
    UnprocessableMessageError,
)
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

    Args:
        queue_url: the queue's URL, for handlers and logs.
        backoff: the queue's backoff policy.
        poison_policy: fate of messages that can never succeed (see ``PoisonPolicy``).
    """

    def __init__(self, queue_url: str, backoff: BackoffPolicy, poison_policy: PoisonPolicy) -> None:
        self.queue_url = queue_url
        self.backoff = backoff
        self.poison_policy = poison_policy

    def process(self, message: Message, lambda_context: Any = None) -> Outcome:
        """Process ``message``; never raises for anything the message or handler does."""
        try:
            call, label = self._prepare(message, lambda_context)
        except UnprocessableMessageError as err:
            return self.unprocessable(message, err)
        return self._run(call, message, label)

    def _prepare(
        self, message: Message, lambda_context: Any
    ) -> tuple[Callable[[], object], str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run(self, call: Callable[[], object], message: Message, label: str) -> Outcome:
        started = time.perf_counter()
        try:
            call()
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
            elapsed = time.perf_counter() - started
            delay = self.backoff.delay(message.receive_count)
            logger.warning(
                "handler raised %s, retrying in %ss message_id=%s task=%s receive_count=%s "
                "queue_url=%s",
                type(err).__name__,
                delay,
                message.message_id,
                label,
                message.receive_count,
                self.queue_url,
                exc_info=True,
            )
            return Outcome(Verdict.RETRIED, delay, f"handler raised {type(err).__name__}", elapsed)
        return Outcome(Verdict.SUCCEEDED, None, "", time.perf_counter() - started)

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
    return clip(value) if isinstance(value, str) and value else "-"


class TaskDispatcher(Dispatcher):
    """Routes a task message to ``registry[TaskName]`` as ``fn(context, **kwargs)``."""

    def __init__(
        self,
        queue_url: str,
        backoff: BackoffPolicy,
        poison_policy: PoisonPolicy,
        registry: HandlerRegistry,
    ) -> None:
        super().__init__(queue_url, backoff, poison_policy)
        self.registry = registry

    def _prepare(self, message: Message, lambda_context: Any) -> tuple[Callable[[], object], str]:
        task = decode_task(message.raw.get("Body"), message.raw.get("MessageAttributes"))
        handler = self.registry.get(task.name)
        if handler is None:
            raise UnknownTaskError(f"no handler registered for task {shown(task.name)}")
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
    ) -> None:
        super().__init__(queue_url, backoff, poison_policy)
        self.handler = handler

    def _prepare(self, message: Message, lambda_context: Any) -> tuple[Callable[[], object], str]:
        return functools.partial(self.handler, self.queue_url, message.raw), "<raw>"
