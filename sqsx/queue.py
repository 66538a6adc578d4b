"""``Queue`` and ``RawQueue``: the public API, producer and consumer side."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Mapping
from types import FrameType, TracebackType
from typing import Any

from sqsx.backoff import BackoffPolicy
from sqsx.codec import check_size, encode_kwargs, task_attributes
from sqsx.dispatch import (
    Dispatcher,
    MessageHandler,
    Outcome,
    PoisonPolicy,
    RawDispatcher,
    TaskDispatcher,
)
from sqsx.engine import Engine
from sqsx.exceptions import SqsxError
from sqsx.message import Message
from sqsx.options import ConsumeOptions, QueueOptions
from sqsx.registry import HandlerRegistry, TaskHandler
from sqsx.sqs import SqsClient
from sqsx.stats import Stats, StatsSnapshot

__all__ = ["BaseQueue", "Queue", "RawQueue"]

logger = logging.getLogger("sqsx.queue")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_REQUIRED_METHODS = ("send_message", "receive_message", "delete_message_batch")


class BaseQueue:
    """What ``Queue`` and ``RawQueue`` share: configuration, consuming, stopping, stats.

    Args:
        url: the queue URL (``http(s)://...``).
        sqs_client: a boto3 SQS client. With ``max_threads > 8`` give it
            ``botocore.config.Config(max_pool_connections=...)`` of at least 10.
        min_backoff_seconds: first retry delay in seconds (default 30, 0 to 43200).
        max_backoff_seconds: largest retry delay in seconds (default 900, up to 43200).
        max_message_bytes: size limit checked before sending, body plus message
            attributes, in bytes (default and maximum 1,048,576: SQS's limit).
        poison_policy: fate of messages that can never succeed (undecodable, unknown task,
            kwargs that do not fit): ``"retry"`` (default) backs them off until the queue's
            redrive policy dead-letters them; ``"delete"`` deletes them with an ERROR line.

    Raises:
        pydantic.ValidationError: a setting is out of bounds; the error names it.
        TypeError: ``sqs_client`` is not an SQS client.
    """

    def __init__(
        self,
        url: str,
        sqs_client: Any,
        min_backoff_seconds: int = 30,
        max_backoff_seconds: int = 900,
        *,
        max_message_bytes: int = 1_048_576,
        poison_policy: PoisonPolicy = "retry",
    ) -> None:
        self._options = QueueOptions(
            url=url,
            min_backoff_seconds=min_backoff_seconds,
            max_backoff_seconds=max_backoff_seconds,
            max_message_bytes=max_message_bytes,
            poison_policy=poison_policy,
        )
        missing = [m for m in _REQUIRED_METHODS if not callable(getattr(sqs_client, m, None))]
        if missing:
            raise TypeError(f"sqs_client is not a boto3 SQS client: it lacks {', '.join(missing)}")
        self._client: SqsClient = sqs_client
        self._backoff = BackoffPolicy(min_backoff_seconds, max_backoff_seconds)
        self._stats = Stats()
        self._stop_requests = 0  # bumped by signals and exit_gracefully; never takes a lock
        self._consuming = threading.Lock()
        self._forced = False

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
    def dispatcher(self) -> Dispatcher:
        """The processing core for this queue (used by the runtimes)."""
        raise NotImplementedError  # pragma: no cover

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
            max_threads: handler threads (default 1). The worker keeps them all busy and
                receives again as soon as one frees up; it holds at most about
                ``max_threads`` plus one batch of messages.
            wait_seconds: seconds to pause after an empty receive (default 10).
            polling_wait_seconds: SQS long-polling time per receive, 0 to 20 s (default 10).
            run_forever: ``False`` does one receive, processes what came, and returns.
            enable_signal_to_exit_gracefully: install SIGINT/SIGTERM handlers (main thread
                only; the previous handlers are restored on return). The first signal stops
                gracefully, a second one stops without waiting for running handlers.
            visibility_timeout: seconds a received message stays hidden; the heartbeat
                extends running messages by this much. Default: the queue's own setting.
            stop_timeout: seconds running handlers get to finish once a stop is requested;
                ``None`` (default) waits for them all.

        Raises:
            pydantic.ValidationError: an option is out of bounds.
            QueueUnavailableError: SQS refused the queue (it does not exist, access denied).
            SqsxError: this queue is already consuming in another thread.
        """
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
        """``consume_messages`` with every option of ``ConsumeOptions`` (receivers, ack delay)."""
        if not self._consuming.acquire(blocking=False):
            raise SqsxError(f"{self.url} is already consuming messages in another thread")
        stop, force, done = threading.Event(), threading.Event(), threading.Event()
        watcher = threading.Thread(
            target=self._watch_stop_requests,
            args=(stop, force, done),
            daemon=True,
            name="sqsx-stop-watcher",
        )
        previous = self._install_signals() if enable_signal_to_exit_gracefully else {}
        self._forced = False
        logger.info("Starting consuming tasks, queue_url=%s", self.url)
        try:
            watcher.start()
            Engine(self._client, self.url, self.dispatcher, self._stats, options, stop, force).run()
        finally:
            done.set()
            watcher.join()
            self._forced = force.is_set()
            self._stop_requests = 0
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._consuming.release()
            logger.info("Stopping consuming tasks, queue_url=%s", self.url)

    def _watch_stop_requests(
        self, stop: threading.Event, force: threading.Event, done: threading.Event
    ) -> None:
        while not done.wait(0.05):
            if self._stop_requests >= 1 and not stop.is_set():
                logger.info("Starting graceful shutdown process, queue_url=%s", self.url)
                stop.set()
            if self._stop_requests >= 2 and not force.is_set():
                logger.warning("Second stop request: not waiting for running handlers")
                force.set()

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            logger.debug("not in the main thread: signal handlers not installed")
            return {}
        return {signum: signal.signal(signum, self._on_signal) for signum in _SIGNALS}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only bumps a counter: a lock taken here could already be held by this thread.
        self._stop_requests += 1

    def exit_gracefully(self, *, force: bool = False) -> None:
        """Ask a running ``consume_messages`` to stop (idempotent; safe from any thread and
        from a signal handler). ``force=True`` does not wait for running handlers.
        A request made before consuming starts stops the next run at once."""
        self._stop_requests = max(self._stop_requests, 2 if force else 1)

    @property
    def forced_stop(self) -> bool:
        """True when the last run stopped without waiting for running handlers."""
        return self._forced

    def stats(self) -> StatsSnapshot:
        """Counters and handler latencies since this queue object was created."""
        return self._stats.snapshot()

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop consuming (if running) and wait for it to end. Handlers stay registered."""
        if self._consuming.locked():
            self.exit_gracefully()
            with self._consuming:
                pass

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

    def _send(self, body: str, attributes: Mapping[str, Mapping[str, Any]] | None) -> Any:
        check_size(body, attributes, self.max_message_bytes)
        params: dict[str, Any] = {"QueueUrl": self.url, "MessageBody": body}
        if attributes:
            params["MessageAttributes"] = dict(attributes)
        return self._client.send_message(**params)


class Queue(BaseQueue):
    """A queue of named tasks: ``add_task`` sends, handlers registered with
    ``add_task_handler`` run them as ``fn(context, **kwargs)``.

    ``context`` holds ``queue_url``, ``task_name``, ``sqs_message`` (boto3's ReceiveMessage
    shape) and, in AWS Lambda, ``lambda_context``. See ``BaseQueue`` for the arguments.
    """

    def __init__(
        self,
        url: str,
        sqs_client: Any,
        min_backoff_seconds: int = 30,
        max_backoff_seconds: int = 900,
        *,
        max_message_bytes: int = 1_048_576,
        poison_policy: PoisonPolicy = "retry",
    ) -> None:
        super().__init__(
            url,
            sqs_client,
            min_backoff_seconds,
            max_backoff_seconds,
            max_message_bytes=max_message_bytes,
            poison_policy=poison_policy,
        )
        self._registry = HandlerRegistry()
        self._dispatcher = TaskDispatcher(self.url, self._backoff, poison_policy, self._registry)

    @property
    def dispatcher(self) -> Dispatcher:
        """The processing core for this queue."""
        return self._dispatcher

    def add_task(self, task_name: str, **kwargs: Any) -> Any:
        """Send task ``task_name`` with JSON-serialisable ``kwargs``.

        Returns:
            The SendMessage response (``MessageId``...).

        Raises:
            ValueError: ``task_name`` is empty, or the message is over ``max_message_bytes``
                (``MessageTooLargeError``, which states the size and the limit).
            TypeError: a kwarg is not JSON-serialisable.
        """
        return self._send(encode_kwargs(kwargs), task_attributes(task_name))

    def add_task_handler(self, task_name: str, task_handler_function: TaskHandler) -> None:
        """Run ``task_handler_function(context, **kwargs)`` for tasks named ``task_name``.

        Safe while consuming: the next message of that task uses the new handler.
        """
        self._registry.register(task_name, task_handler_function)

    def remove_task_handler(self, task_name: str) -> bool:
        """Forget the handler of ``task_name``; ``False`` when there was none."""
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
        max_message_bytes: int = 1_048_576,
        poison_policy: PoisonPolicy = "retry",
    ) -> None:
        super().__init__(
            url,
            sqs_client,
            min_backoff_seconds,
            max_backoff_seconds,
            max_message_bytes=max_message_bytes,
            poison_policy=poison_policy,
        )
        if not callable(message_handler_function):
            raise TypeError("message_handler_function must be callable")
        self._dispatcher = RawDispatcher(
            self.url, self._backoff, poison_policy, message_handler_function
        )

    @property
    def dispatcher(self) -> Dispatcher:
        """The processing core for this queue."""
        return self._dispatcher

    def add_message(
        self,
        message_body: str,
        message_attributes: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Any:
        """Send ``message_body`` with optional message attributes (boto3's shape).

        Returns:
            The SendMessage response.

        Raises:
            ValueError: the message is over ``max_message_bytes`` (``MessageTooLargeError``).
        """
        return self._send(message_body, message_attributes)
