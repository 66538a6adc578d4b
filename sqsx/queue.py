"""``Queue`` and ``RawQueue``: the public API, producer and consumer side."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqsx.codec import DEFAULT_MAX_MESSAGE_BYTES, encode_kwargs, task_attributes
from sqsx.dispatch import MessageHandler, PoisonPolicy
from sqsx.exceptions import ConfigurationError
from sqsx.hooks import Hook
from sqsx.registry import HandlerRegistry, TaskHandler
from sqsx.routes import RawDispatcher, TaskDispatcher
from sqsx.sending import (
    OutgoingMessage,
    RawMessage,
    SendResult,
    TaskMessage,
    merge_attributes,
)
from sqsx.signature import check_raw_handler, signature_of
from sqsx.timelimits import checked_time_limit

if TYPE_CHECKING:
    from sqsx.payloads import S3Payloads

from sqsx.basequeue import BaseQueue

__all__ = ["BaseQueue", "Queue", "RawQueue"]


class _Unset:
    """Marks an option not given (``None`` means "no limit")."""


_UNSET = _Unset()
_MAX_CONCURRENCY = 1024


def _checked_cap(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_CONCURRENCY:
        raise ConfigurationError(
            f"max_concurrency must be a whole number from 1 to {_MAX_CONCURRENCY} or None, "
            f"got {value!r}"
        )
    return value


logger = logging.getLogger("sqsx.queue")


class Queue(BaseQueue):
    """A queue of named tasks: ``add_task`` sends, handlers registered with
    ``add_task_handler`` run them as ``fn(context, **kwargs)``.

    ``context`` holds ``queue_url``, ``task_name``, ``sqs_message`` (boto3's ReceiveMessage
    shape) and, in AWS Lambda, ``lambda_context``. A handler with annotated parameters has
    its kwargs validated and converted by pydantic before it runs; kwargs that do not fit
    make the message unprocessable (see ``poison_policy``).

    Args:
        validate_on_send: also check kwargs against the registered handler when sending,
            raising ``TaskArgumentsError`` (a ``ValueError``) at the door (default False).

    See ``BaseQueue`` for the other arguments.
    """

    def __init__(
        self,
        url: str,
        sqs_client: Any,
        min_backoff_seconds: int = 30,
        max_backoff_seconds: int = 900,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        poison_policy: PoisonPolicy = "retry",
        validate_on_send: bool = False,
        hooks: Iterable[Hook] = (),
        time_limit: float | None = None,
        payloads: S3Payloads | None = None,
    ) -> None:
        super().__init__(
            url,
            sqs_client,
            min_backoff_seconds,
            max_backoff_seconds,
            max_message_bytes=max_message_bytes,
            poison_policy=poison_policy,
            hooks=hooks,
            time_limit=time_limit,
            payloads=payloads,
        )
        self._validate_on_send = validate_on_send
        self._registry = HandlerRegistry()
        self._task_dispatcher = TaskDispatcher(
            self.url,
            self._backoff,
            poison_policy,
            self._registry,
            self._hooks,
            time_limit=self._time_limit,
        )
        self._bind(self._task_dispatcher)

    def copy(self, *, url: str | None = None, sqs_client: Any = None) -> Queue:
        """This queue's settings and task handlers, for another URL or client."""
        twin = Queue(
            url=url or self.url,
            sqs_client=sqs_client or self._client,
            validate_on_send=self._validate_on_send,
            **self._settings(),
        )
        limits, caps = self._task_dispatcher.task_limits, self._task_dispatcher.task_caps
        for name in self._registry.names():
            handler = self._registry.get(name)
            if handler is not None:
                twin.add_task_handler(
                    name,
                    handler,
                    time_limit=limits.get(name, _UNSET),
                    max_concurrency=caps.get(name),
                )
        return twin

    def add_task(self, task_name: str, **kwargs: Any) -> Any:
        """Send task ``task_name`` with JSON-serialisable ``kwargs`` (as sqsx 0.7 did).

        Returns:
            The SendMessage response (``MessageId``...).

        Raises:
            ValueError: ``task_name`` is empty, the message is over ``max_message_bytes``
                (``MessageTooLargeError`` states the size and the limit), the queue is FIFO
                (use ``send_task`` with a ``group_id``), or, with ``validate_on_send``, the
                kwargs do not fit the handler (``TaskArgumentsError``).
            TypeError: a kwarg cannot be written as JSON.
        """
        return self.send_task(task_name, kwargs)

    def send_task(
        self,
        task_name: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        delay_seconds: int | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        attributes: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Any:
        """Send one task, with sending options kept apart from the task's arguments.

        Args:
            task_name: the task to run.
            kwargs: the handler's keyword arguments (JSON types, pydantic models, dates...).
            delay_seconds: 0 to 900 s before it can be received (standard queues only).
            group_id: ``MessageGroupId``; required on FIFO queues, where messages of one
                group run one at a time, in order.
            deduplication_id: ``MessageDeduplicationId`` (FIFO queues without
                content-based deduplication need one).
            attributes: extra message attributes in boto3's shape (not ``TaskName``).

        Returns:
            The SendMessage response. Raises as ``add_task`` does.
        """
        return self._send(
            self._task_message(
                TaskMessage(
                    task_name, kwargs or {}, delay_seconds, group_id, deduplication_id, attributes
                )
            )
        )

    def send_tasks(self, tasks: Iterable[TaskMessage]) -> list[SendResult]:
        """Send many tasks with SendMessageBatch (ten entries and 1 MiB per request).

        Returns one ``SendResult`` per task, in order. An entry that failed after retries,
        or that is over the size limit, has ``ok == False`` and an ``error`` code; none is
        dropped silently. An invalid option or argument raises before anything is sent.
        """
        return self._send_many([self._task_message(task) for task in tasks])

    def _task_message(self, task: TaskMessage) -> OutgoingMessage:
        if self._validate_on_send:
            handler = self._registry.get(task.task_name)
            if handler is not None:
                signature_of(handler).bind(task.task_name, task.kwargs)
        return OutgoingMessage.build(
            encode_kwargs(task.kwargs),
            merge_attributes(task_attributes(task.task_name), task.attributes),
            fifo=self.fifo,
            delay_seconds=task.delay_seconds,
            group_id=task.group_id,
            deduplication_id=task.deduplication_id,
        )

    def add_task_handler(
        self,
        task_name: str,
        task_handler_function: TaskHandler,
        *,
        time_limit: float | _Unset | None = _UNSET,
        max_concurrency: int | None = None,
    ) -> None:
        """Run ``task_handler_function(context, **kwargs)`` for tasks named ``task_name``.

        Safe while consuming: the next message of that task uses the new handler.

        Args:
            task_name: the task's name (the ``TaskName`` attribute).
            task_handler_function: a plain or ``async def`` function.
            time_limit: seconds this task's handler may run (above 0, at most 43200);
                ``None`` for no limit; default: the queue's ``time_limit``.
            max_concurrency: at most this many messages of the task run at once in one
                worker process or Lambda invocation (1 to 1024); ``None`` (default) for no
                cap. Waiting messages hold no thread (see ``sqsx.caps``).

        Raises:
            ConfigurationError: ``time_limit`` or ``max_concurrency`` is out of bounds.
            HandlerSignatureError: (a ``TypeError``) the function cannot be called
                ``fn(context, **kwargs)``; the message names it, its file and line.
        """
        limits = dict(self._task_dispatcher.task_limits)
        if isinstance(time_limit, _Unset):
            limits.pop(task_name, None)
        else:
            limits[task_name] = checked_time_limit(time_limit)
        caps = dict(self._task_dispatcher.task_caps)
        caps.pop(task_name, None)
        if max_concurrency is not None:
            caps[task_name] = _checked_cap(max_concurrency)
        self._registry.register(task_name, task_handler_function)
        self._task_dispatcher.task_limits = limits
        self._task_dispatcher.task_caps = caps

    def remove_task_handler(self, task_name: str) -> bool:
        """Forget the handler of ``task_name``; ``False`` when there was none."""
        dispatcher = self._task_dispatcher
        dispatcher.task_limits = {k: v for k, v in dispatcher.task_limits.items() if k != task_name}
        dispatcher.task_caps = {k: v for k, v in dispatcher.task_caps.items() if k != task_name}
        return self._registry.unregister(task_name)

    @property
    def task_names(self) -> list[str]:
        """Task names with a handler, sorted."""
        return self._registry.names()


class RawQueue(BaseQueue):
    """A queue of plain messages, all handled by ``message_handler_function(queue_url,
    sqs_message)``. See ``BaseQueue`` for the other arguments."""

    def __init__(
        self,
        url: str,
        message_handler_function: MessageHandler,
        sqs_client: Any,
        min_backoff_seconds: int = 30,
        max_backoff_seconds: int = 900,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        poison_policy: PoisonPolicy = "retry",
        hooks: Iterable[Hook] = (),
        time_limit: float | None = None,
        payloads: S3Payloads | None = None,
    ) -> None:
        super().__init__(
            url,
            sqs_client,
            min_backoff_seconds,
            max_backoff_seconds,
            max_message_bytes=max_message_bytes,
            poison_policy=poison_policy,
            hooks=hooks,
            time_limit=time_limit,
            payloads=payloads,
        )
        check_raw_handler(message_handler_function)  # a TypeError naming the problem
        self._raw_dispatcher = RawDispatcher(
            self.url,
            self._backoff,
            poison_policy,
            message_handler_function,
            self._hooks,
            time_limit=self._time_limit,
        )
        self._bind(self._raw_dispatcher)

    def copy(self, *, url: str | None = None, sqs_client: Any = None) -> RawQueue:
        """This queue's settings and message handler, for another URL or client."""
        handler = self._raw_dispatcher.handler
        return RawQueue(url or self.url, handler, sqs_client or self._client, **self._settings())

    def add_message(
        self,
        message_body: str,
        message_attributes: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Any:
        """Send ``message_body`` with optional message attributes (boto3's shape).

        Returns:
            The SendMessage response.

        Raises:
            ValueError: the message is over ``max_message_bytes`` (``MessageTooLargeError``),
                or the queue is FIFO (use ``send_message`` with a ``group_id``).
        """
        return self.send_message(message_body, attributes=message_attributes)

    def send_message(
        self,
        message_body: str,
        *,
        attributes: Mapping[str, Mapping[str, Any]] | None = None,
        delay_seconds: int | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
    ) -> Any:
        """Send one message with sending options (see ``Queue.send_task`` for each)."""
        return self._send(
            self._raw_message(
                RawMessage(message_body, attributes, delay_seconds, group_id, deduplication_id)
            )
        )

    def send_messages(self, messages: Iterable[str | RawMessage]) -> list[SendResult]:
        """Send many messages with SendMessageBatch; one ``SendResult`` each, in order
        (see ``Queue.send_tasks``)."""
        return self._send_many(
            [self._raw_message(m if isinstance(m, RawMessage) else RawMessage(m)) for m in messages]
        )

    def _raw_message(self, message: RawMessage) -> OutgoingMessage:
        return OutgoingMessage.build(
            message.body,
            message.attributes,
            fifo=self.fifo,
            delay_seconds=message.delay_seconds,
            group_id=message.group_id,
            deduplication_id=message.deduplication_id,
        )
