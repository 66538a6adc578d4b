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

A lane runs in two steps, so that a runtime with many fast records builds nothing for the
usual one: ``attempt(raw, lambda_context)`` runs the message in boto3's shape and returns
its handler's seconds when it succeeded (its ``Outcome`` is then ``Outcome.succeeded``'s,
no fate table needed), else a ``Miss``; ``judge(message, miss)`` gives a miss its fate.
``lane(message, lambda_context)`` does both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sqsx.clip import shown
from sqsx.codec import decode_kwargs, task_name_of
from sqsx.exceptions import UnknownTaskError
from sqsx.fates import Fates
from sqsx.message import Message
from sqsx.outcome import Outcome
from sqsx.registry import HandlerRegistry
from sqsx.signature import signature_of

__all__ = ["PLAIN_RESULTS", "Miss", "PlainLane", "RawLane", "TaskLane"]

#: What handlers usually return: not awaitable, no need to look closer.
PLAIN_RESULTS = (str, bytes, int, float, bool, dict, list, tuple)

#: Runs what a handler returned when it is not one of ``PLAIN_RESULTS`` (an awaitable is
#: run to completion, a generator refused): the dispatcher's ``_finish``.
FinishFn = Callable[[object, None], None]

#: ``TaskSignature.bind``: ``bind(task_name, kwargs) -> kwargs`` to call the handler with.
_BindFn = Callable[[str, dict[str, Any]], dict[str, Any]]


class Miss:
    """A message that did not simply succeed in a lane's ``attempt``: what ``judge`` needs.

    Attributes:
        error: what was raised (``None``: the handler returned, but its fate is the fate
            table's to say).
        label: the task name (``"<raw>"`` for a raw queue); ``None`` when the message failed
            before its handler (undecodable, unknown task, kwargs that do not fit).
        handler_seconds: how long the handler ran (0 when it did not run).
    """

    __slots__ = ("error", "handler_seconds", "label")

    def __init__(
        self, error: BaseException | None, label: str | None, handler_seconds: float = 0.0
    ) -> None:
        self.error = error
        self.label = label
        self.handler_seconds = handler_seconds


class PlainLane(Protocol):
    """``lane(message, lambda_context) -> Outcome``; never raises for anything the
    message or its handler does. ``attempt`` and ``judge`` are its two steps."""

    def __call__(self, message: Message, lambda_context: Any, /) -> Outcome: ...

    def attempt(self, raw: Mapping[str, Any], lambda_context: Any, /) -> float | Miss:
        """Run the message ``raw``: its handler's seconds when it succeeded, else a
        ``Miss`` for ``judge``."""
        ...

    def judge(self, message: Message, miss: Miss, /) -> Outcome:
        """The fate of a ``Miss`` of ``message`` (whose ``raw`` was attempted)."""
        ...


class _Lane:
    __slots__ = ("_fates", "_finish", "_url")

    def __init__(self, queue_url: str, fates: Fates, finish: FinishFn) -> None:
        self._url = queue_url
        self._fates = fates
        self._finish = finish

    def __call__(self, message: Message, lambda_context: Any, /) -> Outcome:
        got = self.attempt(message.raw, lambda_context)
        if type(got) is float:
            return Outcome.succeeded(got)
        assert isinstance(got, Miss)
        return self.judge(message, got)

    def attempt(self, raw: Mapping[str, Any], lambda_context: Any, /) -> float | Miss:
        raise NotImplementedError

    def judge(self, message: Message, miss: Miss, /) -> Outcome:
        if miss.label is None:
            assert isinstance(miss.error, Exception)
            return self._fates.unreadable(message, miss.error)
        return self._fates.handled(message, miss.label, miss.error, miss.handler_seconds)


class TaskLane(_Lane):
    """The plain lane of a ``TaskDispatcher``: ``registry[TaskName](context, **kwargs)``."""

    __slots__ = ("_bound", "_registry")

    def __init__(
        self, queue_url: str, fates: Fates, registry: HandlerRegistry, finish: FinishFn
    ) -> None:
        super().__init__(queue_url, fates, finish)
        self._registry = registry
        # task name -> its handler and bind, looked up once per lane (a lane is asked for
        # per batch, so a handler registered since is seen by the next one)
        self._bound: dict[str, tuple[Callable[..., Any], _BindFn]] = {}

    def attempt(self, raw: Mapping[str, Any], lambda_context: Any, /) -> float | Miss:
        try:
            name = task_name_of(raw.get("MessageAttributes"))
            kwargs = decode_kwargs(raw.get("Body"))
            found = self._bound.get(name) or self._look_up(name)
            handler = found[0]
            kwargs = found[1](name, kwargs)
        except Exception as err:
            return Miss(err, None)
        context: dict[str, Any] = {"queue_url": self._url, "task_name": name, "sqs_message": raw}
        if lambda_context is not None:
            context["lambda_context"] = lambda_context
        started = time.perf_counter()
        try:
            result = handler(context, **kwargs)
            if result is not None and not isinstance(result, PLAIN_RESULTS):
                self._finish(result, None)
        except BaseException as err:  # as ``begin``: the fate table sorts it out
            return Miss(err, name, time.perf_counter() - started)
        return time.perf_counter() - started

    def _look_up(self, name: str) -> tuple[Callable[..., Any], _BindFn]:
        handler = self._registry.get(name)
        if handler is None:
            raise UnknownTaskError(f"no handler registered for task {shown(name)}")
        found = self._bound[name] = (handler, signature_of(handler).bind)
        return found


class RawLane(_Lane):
    """The plain lane of a ``RawDispatcher``: ``handler(queue_url, sqs_message)``."""

    __slots__ = ("_handler",)

    def __init__(
        self, queue_url: str, fates: Fates, handler: Callable[..., Any], finish: FinishFn
    ) -> None:
        super().__init__(queue_url, fates, finish)
        self._handler = handler

    def attempt(self, raw: Mapping[str, Any], lambda_context: Any, /) -> float | Miss:
        started = time.perf_counter()
        try:
            result = self._handler(self._url, raw)
            if result is not None and not isinstance(result, PLAIN_RESULTS):
                self._finish(result, None)
        except BaseException as err:
            return Miss(err, "<raw>", time.perf_counter() - started)
        return time.perf_counter() - started
