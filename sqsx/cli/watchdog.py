"""The supervisor's watchdog: a child of ``sqsx worker --processes N`` that goes silent is
killed, and restarted like any child that died.

A child writes a line to the supervisor at least every half second
(``sqsx.cli.link.REPORT_SECONDS``), from a thread of its own, as long as any of its Python
threads can run. When none can (a handler holding the GIL in a C call that never returns,
a process stopped by SIGSTOP, a deadlock in the interpreter), the lines stop; so do the
child's heartbeats, and a graceful stop cannot reach it either. Once a child that started
consuming has sent nothing for ``--kill-silent-after`` seconds (default 60), the supervisor
sends it SIGKILL; its messages come back after their visibility timeout, as after any crash
(nothing extends them any more), and the child is restarted with the usual crash backoff.
A child is watched from its ``ready`` line to its ``final`` one: not while it imports its
module, which may legitimately take long, nor on its way out.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import time

from sqsx.cli.target import UsageError

__all__ = ["DEFAULT_KILL_SILENT_AFTER", "Liveness", "refuse_without_fleet"]

logger = logging.getLogger(__name__)

#: Seconds a consuming child may stay silent before the supervisor kills it.
DEFAULT_KILL_SILENT_AFTER = 60.0


class Liveness:
    """When one child process was last heard from (reset for each new process)."""

    def __init__(self) -> None:
        self._heard: float | None = None
        self.killed_after: float | None = None  # seconds of silence, once killed for it

    def reset(self) -> None:
        """A new process: not watched until its first line."""
        self._heard = None
        self.killed_after = None

    def heard(self, kind: str) -> None:
        """A line of ``kind`` arrived: watched from now on, until the ``final`` line."""
        self._heard = None if kind == "final" else time.monotonic()

    def silent_for(self, now: float) -> float:
        """Seconds since the last line (0 while not watched)."""
        heard = self._heard
        return 0.0 if heard is None else max(now - heard, 0.0)

    def check(self, index: int, pid: int, limit: float, now: float) -> bool:
        """SIGKILL process ``pid`` (slot ``index``) if it has been silent for more than
        ``limit`` seconds; True if it was killed now."""
        silent = self.silent_for(now)
        if self.killed_after is not None or silent <= limit:
            return False
        self.killed_after = silent
        logger.warning(
            "worker process %d pid=%d sent nothing for %.1f s (--kill-silent-after %g): "
            "killing it (a handler holding the GIL, or the process stopped); its messages "
            "come back after their visibility timeout",
            index,
            pid,
            silent,
            limit,
        )
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it exited meanwhile
        return True

    def why(self) -> str:
        """How the death log explains a kill of ours (``""`` if there was none)."""
        if self.killed_after is None:
            return ""
        return f" after {self.killed_after:.1f} s of silence"


def refuse_without_fleet(args: argparse.Namespace) -> None:
    """``--hard-kill-after`` and ``--kill-silent-after`` need a supervisor: refuse them on a
    worker of one process (its abandoned threads are only let go, as documented)."""
    if args.processes > 1 or args.supervised_fd is not None:
        return
    for option in ("hard_kill_after", "kill_silent_after"):
        if getattr(args, option, None) is not None:
            flag = "--" + option.replace("_", "-")
            raise UsageError(
                f"{flag} needs --processes 2 or more: a worker of one process cannot restart "
                "itself (its abandoned handlers are let go instead)"
            )
