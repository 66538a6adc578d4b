"""The event loop that runs ``async def`` handlers, owned by the core and shared by both
runtimes.

A coroutine handler is run to completion on one event loop per queue, in a daemon thread
of its own, started on first use and kept for the life of the process (in Lambda: across
warm invocations). The thread that took the message waits for its coroutine, so the
coroutines running at once are bounded by the runtime's threads (``max_threads``) and the
message keeps its heartbeat, backoff and deadline guard exactly as a sync handler's does.

That is the plain path (``Dispatcher.process``). The runtimes take the async lane instead
(``sqsx.lanes``): the thread hands the coroutine to this loop and moves on, and the
message is settled when the coroutine ends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any

from sqsx.exceptions import TimeLimitExceeded

__all__ = ["EventLoopThread"]


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class EventLoopThread:
    """A private asyncio event loop in a daemon thread.

    Args:
        name: the thread's name.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, awaitable: Awaitable[Any], timeout: float | None = None) -> Any:
        """Run ``awaitable`` on the loop and wait for it; returns its result or raises what
        it raised (``Retry``, ``NoRetry`` and errors alike).

        Past ``timeout`` seconds the coroutine is cancelled and ``TimeLimitExceeded`` is
        raised; so is any ``BaseException`` raised into the waiting thread.
        """
        coroutine: Coroutine[Any, Any, Any] = (
            awaitable if asyncio.iscoroutine(awaitable) else _awaited(awaitable)
        )
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._running_loop())
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeLimitExceeded from None
        except BaseException:
            future.cancel()
            raise

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        """Have the loop call ``callback(*args)`` soon, in its thread (from any thread)."""
        self._running_loop().call_soon_threadsafe(callback, *args)

    def is_current(self) -> bool:
        """True in the loop's own thread."""
        thread = self._thread
        return thread is not None and thread.ident == threading.get_ident()

    @property
    def thread(self) -> threading.Thread | None:
        """The loop's thread, once started."""
        return self._thread

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()
                thread = threading.Thread(
                    target=self._serve, args=(loop, started), name=self._name, daemon=True
                )
                thread.start()
                started.wait()
                self._thread, self._loop = thread, loop
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        loop.run_forever()
