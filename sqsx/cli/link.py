"""The socket between ``sqsx worker --processes N`` and each of its children.

The child writes JSON lines, one object each with a ``kind``: ``ready`` once it consumes
(``url``, ``on_queue``, ``limits`` for the supervisor's startup line), ``stats`` every half
second and ``final`` at exit (``ending``, ``code``), the last two with its ``StatsSnapshot``
as ``stats`` and, for a child consuming several queues, each queue's as ``queues`` (by
URL); ``overrun`` when a handler ran past its hard deadline (``sqsx.cli.overrun``).
Every line is also a heartbeat: the supervisor kills a child that sends nothing for
``--kill-silent-after`` seconds (``sqsx.cli.watchdog``), so a ``stats`` line (or, if the
counters cannot be read, a ``beat``) goes out every half second. The supervisor never
writes: the child only watches for its end to close, which means the supervisor is gone and
the child should stop.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from typing import Any

from sqsx.stats import StatsSnapshot

__all__ = ["REPORT_SECONDS", "SupervisorLink"]

REPORT_SECONDS = 0.5

logger = logging.getLogger(__name__)


class SupervisorLink:
    """A supervised child's end of the socket: sends ``ready``, counters and ``final``;
    ``on_close`` runs when the supervisor goes away."""

    def __init__(self, fd: int) -> None:
        self._sock = socket.socket(fileno=fd)
        self._lock = threading.Lock()
        self._broken = False

    def watch(self, on_close: Any) -> None:
        """Call ``on_close()`` from a thread once the supervisor's end closes."""

        def wait() -> None:
            try:
                while self._sock.recv(64):
                    pass
            except OSError:
                pass
            on_close()

        threading.Thread(target=wait, name="sqsx-supervisor-link", daemon=True).start()

    def send(self, kind: str, **fields: Any) -> None:
        """One JSON line; a supervisor that is gone is not an error here."""
        line = json.dumps({"kind": kind, **fields}) + "\n"
        with self._lock:
            if self._broken:
                return
            try:
                self._sock.sendall(line.encode())
            except OSError:
                self._broken = True

    def report(
        self,
        kind: str,
        snapshot: StatsSnapshot,
        queues: Mapping[str, StatsSnapshot] | None = None,
        **fields: Any,
    ) -> None:
        """Send ``snapshot`` (and each queue's, for several) as a ``kind`` line."""
        if queues is not None:
            fields["queues"] = {url: dataclasses.asdict(s) for url, s in queues.items()}
        self.send(kind, stats=dataclasses.asdict(snapshot), **fields)

    def report_every(
        self,
        stats: Callable[[], StatsSnapshot],
        by_queue: Callable[[], Mapping[str, StatsSnapshot]] | None = None,
    ) -> Callable[[], None]:
        """Send ``stats()`` (and ``by_queue()``) every half second from a thread; returns
        the function that stops it (and waits for it)."""
        done = threading.Event()

        def loop() -> None:
            while not done.wait(REPORT_SECONDS):
                try:
                    self.report("stats", stats(), by_queue() if by_queue else None)
                except Exception:  # the heartbeat must go on: the watchdog counts on it
                    logger.exception("could not read the counters for the supervisor")
                    self.send("beat")

        thread = threading.Thread(target=loop, name="sqsx-supervisor-report", daemon=True)
        thread.start()

        def stop() -> None:
            done.set()
            thread.join(5)

        return stop
