"""``BaseQueue``: what ``Queue`` and ``RawQueue`` share: configuration, processing,
consuming (through ``sqsx.consumer``), hooks and the send path."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqsx.backoff import BackoffPolicy
from sqsx.codec import DEFAULT_MAX_MESSAGE_BYTES, check_size
from sqsx.consumer import Consumer
from sqsx.consuming import Consuming
from sqsx.dispatch import (
    Dispatcher,
    Outcome,
    PoisonPolicy,
)
from sqsx.exceptions import WrongTypeError
from sqsx.hooks import Hook, HookChain
from sqsx.message import Message
from sqsx.ordering import is_fifo
from sqsx.sending import (
    OutgoingMessage,
    SendResult,
    send_batch,
)
from sqsx.settings import queue_settings
from sqsx.sqs import SqsClient
from sqsx.stats import StatsSnapshot
from sqsx.timelimits import checked_time_limit

if TYPE_CHECKING:
    from sqsx.options import ConsumeOptions
    from sqsx.payloads import S3Payloads

__all__ = ["BaseQueue"]

_REQUIRED_METHODS = (
    "send_message",
    "send_message_batch",
    "receive_message",
    "delete_message_batch",
    "change_message_visibility_batch",
    "get_queue_attributes",
)


class BaseQueue(Consuming):
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
