"""Stop requests: from SIGINT/SIGTERM and ``exit_gracefully``, to the engine's events.

A request only bumps a counter, without taking any lock: a signal handler runs in the main
thread between two bytecodes, possibly while that thread holds the very lock an ``Event``
would take, which is how the published sqsx 0.7 could deadlock on a second Ctrl-C. A
watcher thread turns the counter into the engine's events: one request stops gracefully,
two stop without waiting for running handlers.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["StopRequests"]

logger = logging.getLogger("sqsx.queue")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_WATCH_SECONDS = 0.05


class StopRequests:
    """The stop requests of one run.

    Args:
        queue_url: for log lines.

    Attributes:
        forced: True when the last watched run was stopped without waiting for handlers.
        signals: the signals received during the last watched run, in order.
    """

    def __init__(self, queue_url: str) -> None:
        self._url = queue_url
        self._count = 0
        self.forced = False
        self.signals: list[int] = []

    def request(self, *, force: bool = False) -> None:
        """Ask for a stop (idempotent; safe from any thread and from a signal handler)."""
        self._count = max(self._count, 2 if force else 1)

    @contextmanager
    def watching(self, *, signals: bool) -> Iterator[tuple[threading.Event, threading.Event]]:
        """For one run: yield its ``(stop, force)`` events, set as requests arrive; with
        ``signals``, SIGINT/SIGTERM count as requests (main thread only) and the previous
        handlers are restored afterwards."""
        stop, force, done = threading.Event(), threading.Event(), threading.Event()
        previous = self._install_signals() if signals else {}
        self.forced = False
        self.signals = []
        watcher = threading.Thread(
            target=self._watch, args=(stop, force, done), daemon=True, name="sqsx-stop-watcher"
        )
        watcher.start()
        try:
            yield stop, force
        finally:
            done.set()
            watcher.join()
            self.forced = force.is_set()
            self._count = 0
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _watch(self, stop: threading.Event, force: threading.Event, done: threading.Event) -> None:
        while not done.wait(_WATCH_SECONDS):
            if self._count >= 1 and not stop.is_set():
                logger.info("Starting graceful shutdown process, queue_url=%s", self._url)
                stop.set()
            if self._count >= 2 and not force.is_set():
                logger.warning("Second stop request: not waiting for running handlers")
                force.set()

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            logger.debug("not in the main thread: signal handlers not installed")
            return {}
        return {signum: signal.signal(signum, self._on_signal) for signum in _SIGNALS}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)  # list.append takes no lock either
        self._count += 1
