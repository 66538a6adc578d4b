"""The children of ``sqsx worker --processes N`` (``sqsx.cli.supervisor``): each slot's
current process, the lines it sends over its socket (``sqsx.cli.link``), and the counters
of the fleet summed over every child, dead predecessors included."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import subprocess
import threading
import time
from typing import Any

from sqsx.cli.watchdog import DEFAULT_KILL_SILENT_AFTER, Liveness
from sqsx.stats import StatsSnapshot, sum_snapshots

__all__ = ["Child", "Fleet"]

logger = logging.getLogger("sqsx.cli.supervisor")  # the supervisor's lines


class Child:
    """One slot of the fleet: its current process and what its predecessors did."""

    def __init__(self, index: int, share: int | None) -> None:
        self.index = index
        self.share = share  # this slot's --max-messages-total, if any
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.ready: dict[str, Any] | None = None
        self.seen_ready = False
        self.final: dict[str, Any] | None = None
        self.overrun: dict[str, Any] | None = None
        self.liveness = Liveness()
        self.latest: StatsSnapshot | None = None
        self.retired: list[StatsSnapshot] = []  # the last counters of dead predecessors
        self.latest_queues: dict[str, StatsSnapshot] = {}  # several queues: each one's
        self.retired_queues: list[dict[str, StatsSnapshot]] = []
        self.restart_at: float | None = None
        self.crashes = 0
        self.done = False
        self._lock = threading.Lock()

    def start(self, argv: list[str]) -> int:
        """Start a process for this slot; returns its pid."""
        parent, child = socket.socketpair()
        self.ready = self.final = self.latest = self.overrun = None
        self.liveness.reset()
        self.seen_ready = False
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [*argv, "--supervised-fd", str(child.fileno())],
            pass_fds=(child.fileno(),),
            start_new_session=True,  # a terminal's Ctrl-C goes to the supervisor only
            stdin=subprocess.DEVNULL,
        )
        child.close()
        threading.Thread(target=self._read, args=(parent,), daemon=True).start()
        return self.process.pid

    def _read(self, sock: socket.socket) -> None:
        with sock, sock.makefile("r", encoding="utf-8") as lines:
            for line in lines:
                try:
                    message = json.loads(line)
                    stats = message.get("stats")
                    self.liveness.heard(message["kind"])
                    with self._lock:
                        if stats is not None:
                            self.latest = StatsSnapshot(**stats)
                        queues = message.get("queues") or {}
                        if queues:
                            self.latest_queues = {
                                url: StatsSnapshot(**snap) for url, snap in queues.items()
                            }
                        if message["kind"] == "ready":
                            self.ready = message
                        elif message["kind"] == "final":
                            self.final = message
                        elif message["kind"] == "overrun":
                            self.overrun = message
                except (ValueError, TypeError, KeyError):
                    logger.warning("worker process %d sent an unreadable line", self.index)

    def snapshots(self) -> list[StatsSnapshot]:
        with self._lock:
            return [*self.retired, *([self.latest] if self.latest else [])]

    def retire(self) -> None:
        with self._lock:
            if self.latest is not None:
                self.retired.append(dataclasses.replace(self.latest, in_flight=0))
            if self.latest_queues:
                self.retired_queues.append(self.latest_queues)
            self.latest = None
            self.latest_queues = {}

    def queue_snapshots(self) -> list[dict[str, StatsSnapshot]]:
        with self._lock:
            return [*self.retired_queues, *([self.latest_queues] if self.latest_queues else [])]

    def processed(self) -> int:
        return sum(s.processed for s in self.snapshots())


class Fleet:
    """The children of one ``sqsx worker --processes N`` and their summed counters.

    ``stats()`` is what progress lines and the summary show; ``snapshots()`` gives each
    child's own counters (the seam for a metrics exporter)."""

    #: Seconds a consuming child may stay silent before it is killed (``sqsx.cli.watchdog``).
    kill_silent_after = DEFAULT_KILL_SILENT_AFTER

    def __init__(self, argv: list[str], processes: int, max_total: int | None) -> None:
        self._argv = argv
        self._started = time.monotonic()
        shares: list[int | None] = [None] * processes
        if max_total is not None:
            shares = [
                max_total // processes + (i < max_total % processes) for i in range(processes)
            ]
        self.children = [Child(i, share) for i, share in enumerate(shares)]

    def spawn(self, child: Child) -> None:
        argv = list(self._argv)
        if child.share is not None:
            argv += ["--max-messages-total", str(max(1, child.share - child.processed()))]
        pid = child.start(argv)
        logger.info("started worker process %d pid=%d", child.index, pid)

    def snapshots(self) -> dict[int, list[StatsSnapshot]]:
        return {child.index: child.snapshots() for child in self.children}

    def stats(self) -> StatsSnapshot:
        all_snapshots = [s for child in self.children for s in child.snapshots()]
        return sum_snapshots(all_snapshots, time.monotonic() - self._started)

    def stats_by_queue(self) -> dict[str, StatsSnapshot]:
        """Each queue's counters summed over the children, for children consuming several
        queues (else empty)."""
        by_url: dict[str, list[StatsSnapshot]] = {}
        for child in self.children:
            for queues in child.queue_snapshots():
                for url, snapshot in queues.items():
                    by_url.setdefault(url, []).append(snapshot)
        elapsed = time.monotonic() - self._started
        return {url: sum_snapshots(snaps, elapsed) for url, snaps in by_url.items()}
