"""``Queue`` and ``RawQueue``: the public API, producer and consumer side."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqsx.backoff import BackoffPolicy
from sqsx.codec import DEFAULT_MAX_MESSAGE_BYTES, check_size, encode_kwargs, task_attributes
from sqsx.consumer import Consumer
from sqsx.dispatch import (
    Dispatcher,
    MessageHandler,
    Outcome,
    PoisonPolicy,
    RawDispatcher,
    TaskDispatcher,
)
from sqsx.exceptions import ConfigurationError, WrongTypeError
from sqsx.hooks import Hook, HookChain
from sqsx.message import Message
from sqsx.ordering import is_fifo
from sqsx.registry import HandlerRegistry, TaskHandler
from sqsx.sending import (
    OutgoingMessage,
    RawMessage,
    SendResult,
    TaskMessage,
    merge_attributes,
    send_batch,
)
from sqsx.settings import queue_settings
from sqsx.signature import check_raw_handler, signature_of
from sqsx.sqs import SqsClient
from sqsx.stats import StatsSnapshot
from sqsx.timelimits import checked_time_limit

if TYPE_CHECKING:
    from sqsx.options import ConsumeOptions
    from sqsx.payloads import S3Payloads

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

_REQUIRED_METHODS = (
    "send_message",
    "send_message_batch",
    "receive_message",
    "delete_message_batch",
    "change_message_visibility_batch",
    "get_queue_attributes",
)


class BaseQueue:
    """What ``Queue`` and ``RawQueue`` share: configuration, consuming, stopping, stats.

    Args:
        url: the queue URL (``http(s)://...``).
        sqs_client: a boto3 SQS client, shared by the worker's threads. The worker has up
            to ``2 * receivers + 2`` calls in flight (receives, deletes, one visibility
            call): botocore's default pool of 10 covers 32 threads at ``max_messages=10``;
            beyond that, or if handlers use the same client, raise
            ``botocore.config.Config(max_pool_connections=...)``.
        min_backoff_seconds: first retry delay in seconds (default 30, 0 to 43200).
        max_backoff_seconds: largest retry delay in seconds (default 900, up to 43200).
        max_message_bytes: size limit checked before sending, body plus message
            attributes, in bytes (default and maximum 1,048,576: SQS's limit).
        poison_policy: fate of messages that can never succeed (undecodable, unknown task,
            kwargs that do not fit): ``"retry"`` (default) backs them off until the queue's
            redrive policy dead-letters them; ``"delete"`` deletes them with an ERROR line.
        hooks: ``sqsx.hooks.Hook`` objects that see every message processed and sent, in
            both runtimes (metrics, tracing, payload offloading...), in order.
        time_limit: seconds a handler may run before it is stopped and its message backed
            off (verdict ``TIMED_OUT``); ``None`` (default) for no limit. See
            ``sqsx.timelimits`` for what can and cannot be interrupted.
        payloads: ``sqsx.payloads.S3Payloads``: large messages through S3, Extended
            Client pointers read (added after ``hooks``; its default threshold is
            ``max_message_bytes``).

    Raises:
        ConfigurationError: a setting is out of bounds (a ``ValueError``); the error names
            it and the bound.
        TypeError: ``sqs_client`` is not an SQS client, or a hook is not a ``Hook``.
    """

    _dispatcher: Dispatcher
    _consumer: Consumer

    def __init__(
        self,
        url: str,
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
        self._time_limit = checked_time_limit(time_limit)
        self._options = queue_settings(
            url=url,
            min_backoff_seconds=min_backoff_seconds,
            max_backoff_seconds=max_backoff_seconds,
            max_message_bytes=max_message_bytes,
            poison_policy=poison_policy,
        )
        missing = [m for m in _REQUIRED_METHODS if not callable(getattr(sqs_client, m, None))]
        if missing:
            raise WrongTypeError(
                f"sqs_client is not a boto3 SQS client: it lacks {', '.join(missing)}"
            )
        self._client: SqsClient = sqs_client
        self._backoff = BackoffPolicy(
            self._options.min_backoff_seconds, self._options.max_backoff_seconds
        )
        if payloads is not None:  # last: it sends (and sizes) what the other hooks made
            hooks = (*hooks, payloads.for_queue(self.max_message_bytes))
        self._hooks = HookChain(hooks)

    def _bind(self, dispatcher: Dispatcher) -> None:
        """Set the queue's processing core (called once by each subclass)."""
        self._dispatcher = dispatcher
        self._consumer = Consumer(self._client, self.url, dispatcher)

    # -- configuration ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The queue URL."""
        return self._options.url

    @property
    def sqs_client(self) -> Any:
        """The boto3 SQS client."""
        return self._client

    @property
    def min_backoff_seconds(self) -> int:
        """First retry delay, in seconds."""
        return self._options.min_backoff_seconds

    @property
    def max_backoff_seconds(self) -> int:
        """Largest retry delay, in seconds."""
        return self._options.max_backoff_seconds

    @property
    def max_message_bytes(self) -> int:
        """Size limit checked before sending, in bytes."""
        return self._options.max_message_bytes

    @property
    def time_limit(self) -> float | None:
        """The queue-wide handler time limit in seconds (``None``: none)."""
        return self._time_limit

    @property
    def dispatcher(self) -> Dispatcher:
        """The processing core for this queue (used by the runtimes)."""
        return self._dispatcher

    def copy(self, *, url: str | None = None, sqs_client: Any = None) -> BaseQueue:
        """A queue of the same kind, settings and handlers for another URL or client
        (``None`` keeps this queue's). Handlers registered later on either are not shared."""
        raise NotImplementedError  # pragma: no cover

    def _settings(self) -> dict[str, Any]:
        return {
            "min_backoff_seconds": self.min_backoff_seconds,
            "max_backoff_seconds": self.max_backoff_seconds,
            "max_message_bytes": self.max_message_bytes,
            "poison_policy": self._options.poison_policy,
            "hooks": self._hooks.hooks,
            "time_limit": self._time_limit,
        }

    # -- processing ------------------------------------------------------------------------

    def process(self, message: Mapping[str, Any] | Message, lambda_context: Any = None) -> Outcome:
        """Run one message (boto3 ReceiveMessage shape) through the handlers.

        Returns the ``Outcome`` (delete, or retry after N seconds); makes no SQS call and
        never raises for anything the message or the handler does.
        """
        if not isinstance(message, Message):
            message = Message.from_boto3(message)
        return self.dispatcher.process(message, lambda_context)

    def consume_messages(
        self,
        max_messages: int = 1,
        max_threads: int = 1,
        wait_seconds: float = 10,
        polling_wait_seconds: int = 10,
        run_forever: bool = True,
        enable_signal_to_exit_gracefully: bool = True,
        *,
        visibility_timeout: int | None = None,
        stop_timeout: float | None = None,
    ) -> None:
        """Receive and process messages until stopped.

        Args:
            max_messages: messages per ReceiveMessage call (1 to 10, default 1).
            max_threads: handler threads (default 1). The worker keeps them all busy:
                receivers fetch the next batches while the current ones run, so messages
                running, waiting and being received never exceed ``max_threads +
                receivers * max_messages`` (see ``ConsumeOptions.receivers``). ``async def``
                handlers run on one event loop; each running coroutine takes a thread.
            wait_seconds: seconds to pause after ``polling_wait_seconds`` of empty receives
                (default 10).
            polling_wait_seconds: SQS long polling on an idle queue, 0 to 20 s (default 10),
                sent as receives of at most 1 s each so that a stop ends within about 1 s.
            run_forever: ``False`` does one receive, processes what came, and returns.
            enable_signal_to_exit_gracefully: install SIGINT/SIGTERM handlers (main thread
                only; the previous handlers are restored on return). The first signal stops
                gracefully, a second one stops without waiting for running handlers.
            visibility_timeout: seconds a received message stays hidden; the heartbeat
                extends running messages by this much. Default: the queue's own setting.
            stop_timeout: seconds running handlers get to finish once a stop is requested;
                ``None`` (default) waits for them all.

        Raises:
            ConfigurationError: an option is out of bounds (a ``ValueError``).
            QueueUnavailableError: SQS refused the queue (it does not exist, access denied).
            SqsxError: this queue is already consuming in another thread.
        """
        from sqsx.options import ConsumeOptions  # pydantic: not on the Lambda import path

        options = ConsumeOptions(
            max_messages=max_messages,
            max_threads=max_threads,
            wait_seconds=wait_seconds,
            polling_wait_seconds=polling_wait_seconds,
            run_forever=run_forever,
            visibility_timeout=visibility_timeout,
            stop_timeout=stop_timeout,
        )
        self.run(options, enable_signal_to_exit_gracefully=enable_signal_to_exit_gracefully)

    def run(
        self, options: ConsumeOptions, *, enable_signal_to_exit_gracefully: bool = False
    ) -> None:
        """``consume_messages`` with every option of ``ConsumeOptions`` (receivers, ack
        delay, drain); signal handlers are off unless asked for."""
        self._consumer.run(options, signals=enable_signal_to_exit_gracefully)

    def exit_gracefully(self, *, force: bool = False) -> None:
        """Ask a running ``consume_messages`` to stop (idempotent; safe from any thread and
        from a signal handler). ``force=True`` does not wait for running handlers.

        A request belongs to one run: made during a run it stops that run only (even from
        a handler still running after the run ended). Made while no run is in progress,
        from any other thread, it stops the next run at once."""
        self._consumer.request_stop(force=force)

    @property
    def forced_stop(self) -> bool:
        """True when the last run stopped without waiting for running handlers."""
        return self._consumer.forced_stop

    @property
    def stop_signals(self) -> tuple[int, ...]:
        """The signals (``signal.SIGINT``...) received during the last run, in order."""
        return self._consumer.stop_signals

    def stats(self) -> StatsSnapshot:
        """Counters and handler latencies since this queue object was created."""
        return self._consumer.stats()

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop consuming (if running) and wait for it to end. Handlers stay registered.

        Called from one of the run's own threads (a handler, the event loop of ``async``
        handlers, or a signal handler interrupting the consuming thread), it only asks for
        the stop: waiting there would never end. From any other thread it waits, so a
        handler must not wait for a thread of its own that calls ``close()`` (use
        ``exit_gracefully()`` there).
        """
        self._consumer.close()

    def __enter__(self) -> BaseQueue:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- sending ---------------------------------------------------------------------------

    @property
    def fifo(self) -> bool:
        """True for a FIFO queue (its URL ends in ``.fifo``)."""
        return is_fifo(self.url)

    @property
    def hooks(self) -> tuple[Hook, ...]:
        """The queue's hooks, in order (see ``sqsx.hooks``)."""
        return self._hooks.hooks

    def add_hook(self, hook: Hook) -> None:
        """Add ``hook`` after the queue's others. A run in progress keeps the hooks it
        started with; the next run, ``process`` and every send use the new set."""
        self._hooks = self._hooks.plus(hook)
        self.dispatcher.hooks = self._hooks

    def _send(self, message: OutgoingMessage) -> Any:
        message = self._hooks.send(message).checked() if self._hooks else message
        check_size(message.body, message.attributes, self.max_message_bytes)
        return self._client.send_message(QueueUrl=self.url, **message.params())

    def _send_many(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        if self._hooks:
            messages = [self._hooks.send(message).checked() for message in messages]
        return send_batch(
            self._client, self.url, messages, max_message_bytes=self.max_message_bytes
        )


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
