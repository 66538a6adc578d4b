"""The plain lane: ``Dispatcher.begin`` in one pass, for a message with nothing around its
handler.

With no hook that observes or resolves messages, no time limit, no concurrency cap and no
``async def`` handler, ``begin`` comes down to: decode the task, find its handler, bind its
kwargs, call it, and ask the queue's ``Fates`` what that makes. A lane does exactly that,
per message, without the layers that are idle then (the ``Processing`` record, the
time-limit guard, the abandon callback, the async lane), so a runtime that runs many fast
records (``sqsx_lambda``) pays only for the work. The fates are the same ``Fates`` calls
as ``begin``'s, so both give the same ``Outcome`` for the same message;
``Dispatcher.plain_lane`` says when a lane may be used.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from sqsx.clip import shown
from sqsx.codec import decode_kwargs, task_name_of
from sqsx.exceptions import UnknownTaskError
from sqsx.fates import Fates
from sqsx.message import Message
from sqsx.outcome import Outcome
from sqsx.registry import HandlerRegistry
from sqsx.signature import signature_of

__all__ = ["PLAIN_RESULTS", "PlainLane", "RawLane", "TaskLane"]

#: What handlers usually return: not awaitable, no need to look closer.
PLAIN_RESULTS = (str, bytes, int, float, bool, dict, list, tuple)

#: Runs what a handler returned when it is not one of ``PLAIN_RESULTS`` (an awaitable is
#: run to completion, a generator refused): the dispatcher's ``_finish``.
FinishFn = Callable[[object, None], None]


class PlainLane(Protocol):
    """``lane(message, lambda_context) -> Outcome``; never raises for anything the
    message or its handler does."""

    def __call__(self, message: Message, lambda_context: Any, /) -> Outcome: ...


class TaskLane:
    """The plain lane of a ``TaskDispatcher``: ``registry[TaskName](context, **kwargs)``."""

    __slots__ = ("_fates", "_finish", "_registry", "_url")

    def __init__(
        self, queue_url: str, fates: Fates, registry: HandlerRegistry, finish: FinishFn
    ) -> None:
        self._url = queue_url
        self._fates = fates
        self._registry = registry
        self._finish = finish

    def __call__(self, message: Message, lambda_context: Any, /) -> Outcome:
        raw = message.raw
        try:
            name = task_name_of(raw.get("MessageAttributes"))
            kwargs = decode_kwargs(raw.get("Body"))
            handler = self._registry.get(name)
            if handler is None:
                raise UnknownTaskError(f"no handler registered for task {shown(name)}")
            kwargs = signature_of(handler).bind(name, kwargs)
        except Exception as err:
            return self._fates.unreadable(message, err)
        context: dict[str, Any] = {"queue_url": self._url, "task_name": name, "sqs_message": raw}
        if lambda_context is not None:
            context["lambda_context"] = lambda_context
        started = time.perf_counter()
        try:
            result = handler(context, **kwargs)
            if result is not None and not isinstance(result, PLAIN_RESULTS):
                self._finish(result, None)
        except BaseException as err:  # as ``begin``: the fate table sorts it out
            return self._fates.handled(message, name, err, time.perf_counter() - started)
        return self._fates.handled(message, name, None, time.perf_counter() - started)


class RawLane:
    """The plain lane of a ``RawDispatcher``: ``handler(queue_url, sqs_message)``."""

    __slots__ = ("_fates", "_finish", "_handler", "_url")

    def __init__(
        self, queue_url: str, fates: Fates, handler: Callable[..., Any], finish: FinishFn
    ) -> None:
        self._url = queue_url
        self._fates = fates
        self._handler = handler
        self._finish = finish

    def __call__(self, message: Message, lambda_context: Any, /) -> Outcome:
        started = time.perf_counter()
        try:
            result = self._handler(self._url, message.raw)
            if result is not None and not isinstance(result, PLAIN_RESULTS):
                self._finish(result, None)
        except BaseException as err:
            return self._fates.handled(message, "<raw>", err, time.perf_counter() - started)
        return self._fates.handled(message, "<raw>", None, time.perf_counter() - started)
