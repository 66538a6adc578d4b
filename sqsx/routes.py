"""The two kinds of queue's dispatchers: ``TaskDispatcher`` routes a task message to the
handler registered for its name, ``RawDispatcher`` hands every message to one handler.
Every fate is still decided by ``sqsx.dispatch.Dispatcher``, which both extend."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqsx.backoff import BackoffPolicy
from sqsx.clip import shown
from sqsx.codec import decode_task
from sqsx.dispatch import Dispatcher, MessageHandler
from sqsx.exceptions import UnknownTaskError
from sqsx.fates import PoisonPolicy
from sqsx.hooks import HookChain
from sqsx.lanes import is_async_function
from sqsx.message import Message
from sqsx.plainlane import PlainLane, RawLane, TaskLane
from sqsx.registry import HandlerRegistry
from sqsx.signature import signature_of

__all__ = ["RawDispatcher", "TaskDispatcher"]


class TaskDispatcher(Dispatcher):
    """Routes a task message to ``registry[TaskName]`` as ``fn(context, **kwargs)``."""

    def __init__(
        self,
        queue_url: str,
        backoff: BackoffPolicy,
        poison_policy: PoisonPolicy,
        registry: HandlerRegistry,
        hooks: HookChain | None = None,
        *,
        time_limit: float | None = None,
    ) -> None:
        super().__init__(queue_url, backoff, poison_policy, hooks, time_limit=time_limit)
        self.registry = registry
        #: Per-task time limits (seconds), over the queue's ``time_limit``. Replaced whole.
        self.task_limits: Mapping[str, float | None] = {}

    def has_async_handlers(self) -> bool:
        return any(is_async_function(self.registry.get(n)) for n in self.registry.names())

    def predecode(self, messages: Sequence[Message]) -> None:
        for message in messages:
            try:
                message.decoded_task = decode_task(
                    message.raw.get("Body"), message.raw.get("MessageAttributes")
                )
            except Exception:  # judged when it is processed
                continue

    def _plain_lane(self) -> PlainLane | None:
        if any(limit is not None for limit in self.task_limits.values()):
            return None
        return TaskLane(self.queue_url, self.fates, self.registry, self._finish)

    def _prepare(
        self, message: Message, lambda_context: Any
    ) -> tuple[Callable[[], object], str, float | None]:
        task = message.decoded_task or decode_task(
            message.raw.get("Body"), message.raw.get("MessageAttributes")
        )
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
        limit = self.task_limits.get(task.name, self.time_limit)
        return functools.partial(handler, context, **kwargs), task.name, limit


class RawDispatcher(Dispatcher):
    """Hands every message to one handler as ``fn(queue_url, sqs_message)``."""

    def __init__(
        self,
        queue_url: str,
        backoff: BackoffPolicy,
        poison_policy: PoisonPolicy,
        handler: MessageHandler,
        hooks: HookChain | None = None,
        *,
        time_limit: float | None = None,
    ) -> None:
        super().__init__(queue_url, backoff, poison_policy, hooks, time_limit=time_limit)
        self.handler = handler

    def has_async_handlers(self) -> bool:
        return is_async_function(self.handler)

    def _plain_lane(self) -> PlainLane | None:
        return RawLane(self.queue_url, self.fates, self.handler, self._finish)

    def _prepare(
        self, message: Message, lambda_context: Any
    ) -> tuple[Callable[[], object], str, float | None]:
        call = functools.partial(self.handler, self.queue_url, message.raw)
        return call, "<raw>", self.time_limit
