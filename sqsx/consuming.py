"""``consume_messages``: the classic entry point, shared by a queue and a ``QueueGroup``:
its arguments, checked once into ``ConsumeOptions``, then the object's own ``run``."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from sqsx.lanes import DEFAULT_MAX_COROUTINES

if TYPE_CHECKING:
    from sqsx.options import ConsumeOptions

__all__ = ["Consuming"]

_C = TypeVar("_C", bound="Consuming")


class Consuming:
    """What has ``run(options)`` gets ``consume_messages(...)`` (sqsx 0.7's arguments),
    and what has ``close()`` is a context manager that closes on exit."""

    def run(
        self, options: ConsumeOptions, *, enable_signal_to_exit_gracefully: bool = False
    ) -> None:
        raise NotImplementedError  # pragma: no cover

    def close(self) -> None:
        raise NotImplementedError  # pragma: no cover

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

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
        max_async: int = DEFAULT_MAX_COROUTINES,
    ) -> None:
        """Receive and process messages until stopped.

        Args:
            max_messages: messages per ReceiveMessage call (1 to 10, default 1).
            max_threads: handler threads (default 1; a ``QueueGroup``'s are shared by all
                its queues, other options apply to each). The worker keeps them all busy:
                receivers fetch the next batches while the current ones run, so messages
                running, waiting and being received never exceed ``max_threads +
                (receivers + 1) * max_messages`` (see ``ConsumeOptions.receivers``).
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
                ``None`` (default) waits for them all. Coroutines still running then are
                cancelled and their messages made visible again at once.
            max_async: coroutines of ``async def`` handlers running at once (1 to 10,000,
                default 100), on one event loop, each holding no thread: a handler thread
                hands the coroutine over and takes its next message.

        Raises:
            ConfigurationError: an option is out of bounds (a ``ValueError``).
            QueueUnavailableError: SQS refused the queue (it does not exist, access denied;
                in a group, the others are stopped).
            SqsxError: this queue (or one of the group) is already consuming.
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
            max_async=max_async,
        )
        self.run(options, enable_signal_to_exit_gracefully=enable_signal_to_exit_gracefully)
