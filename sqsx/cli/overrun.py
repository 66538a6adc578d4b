"""The hard deadline of a child of ``sqsx worker --processes N``.

Python cannot kill a thread. A handler past its time limit and its 2 s grace is abandoned
(``sqsx.timelimits``): its message already has its fate (``TIMED_OUT``, made visible again
after its backoff by the ChangeMessageVisibility of the abandon step) and a new thread
takes its place. But the old thread may go on burning CPU or holding memory, sockets and
locks. A single worker keeps it; a supervised child ends itself instead: once a handler is
still running ``--hard-kill-after`` seconds after it was abandoned (its hard deadline:
time limit + grace + that), the child logs it, tells the supervisor (an ``overrun`` line
naming the message and task), and stops gracefully: no more receives, its unstarted
messages released at once, its other running handlers given ``--stop-timeout`` to finish,
acks flushed. Its abandoned message is not touched again: its backoff stands (changing it
now could hide a redelivery another process is already running). It then exits with
``EXIT_IGNORED_LIMIT`` through ``os._exit``: the interpreter's own exit could wait on the
runaway thread (an ``atexit`` join, a lock it holds). The supervisor restarts it at once,
without counting a crash.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable

from sqsx.cli.link import SupervisorLink
from sqsx.timelimits import Guard, TimeLimits

__all__ = [
    "DEFAULT_HARD_KILL_AFTER",
    "EXIT_IGNORED_LIMIT",
    "OverrunWatch",
    "describe_overrun",
    "exit_now",
]

logger = logging.getLogger(__name__)

#: Exit code of a child that ended itself for a handler past its hard deadline
#: (``EX_TEMPFAIL`` of sysexits.h: try again).
EXIT_IGNORED_LIMIT = 75

#: Seconds an abandoned handler may go on running before its process is restarted.
DEFAULT_HARD_KILL_AFTER = 30.0

_CHECK_SECONDS = 0.25


def describe_overrun(line: dict[str, object]) -> str:
    """The words for an ``overrun`` line: message id, task, and how late it is."""
    return (
        f"message_id={line.get('message_id') or '?'} task={line.get('task') or '?'}, "
        f"time limit {line.get('limit', '?')} s, still running "
        f"{line.get('late', '?')} s after it was abandoned"
    )


class OverrunWatch:
    """Watches a supervised child's abandoned handlers; past the hard deadline it asks
    ``stop()`` and remembers the handler (``tripped``).

    Args:
        time_limits: the queue's time limits (``queue.dispatcher.time_limits``).
        link: the socket to the supervisor.
        stop: asks the child to stop gracefully (``queue.exit_gracefully``).
        hard_kill_after: seconds after its abandonment a handler may still run.
        queue_url: for the log line.
    """

    def __init__(
        self,
        time_limits: TimeLimits,
        link: SupervisorLink,
        stop: Callable[[], None],
        *,
        hard_kill_after: float,
        queue_url: str,
    ) -> None:
        self._time_limits = time_limits
        self._link = link
        self._stop = stop
        self._after = hard_kill_after
        self._url = queue_url
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.tripped: dict[str, object] | None = None

    def start(self) -> None:
        """Watch from a thread until ``close()``."""
        self._thread = threading.Thread(target=self._loop, name="sqsx-overrun", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop watching (and wait for the thread)."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(5)

    def check(self) -> bool:
        """Act if a handler is past its hard deadline (once); True once one was."""
        if self.tripped is not None:
            return True
        late = self._time_limits.overrunning(self._after)
        if not late:
            return False
        self.tripped = self._describe(late[0])
        logger.warning(
            "handler still running %g s after it was abandoned (time limit %g s + %g s grace "
            "+ --hard-kill-after %g s): stopping this worker process so that the supervisor "
            "restarts it; its message keeps its backoff message_id=%s task=%s queue_url=%s",
            self.tripped["late"],
            late[0].limit,
            self._time_limits.grace_seconds,
            self._after,
            late[0].message_id,
            late[0].task,
            self._url,
        )
        self._link.send("overrun", **self.tripped)
        self._stop()
        return True

    def _describe(self, guard: Guard) -> dict[str, object]:
        return {
            "message_id": guard.message_id,
            "task": guard.task,
            "limit": guard.limit,
            "late": round(time.monotonic() - guard.abandoned_at, 1),
        }

    def _loop(self) -> None:
        while not self._done.wait(_CHECK_SECONDS):
            try:
                if self.check():
                    return
            except Exception:  # the watch must not take the child down
                logger.exception("checking abandoned handlers failed queue_url=%s", self._url)

    def ending(self) -> str:
        """The summary's ending, once tripped."""
        return f"stopped: a handler ignored its time limit ({describe_overrun(self.tripped or {})})"


def exit_now(code: int) -> None:
    """End the process with ``code`` at once, after flushing logs and the std streams
    (the abandoned thread may keep a normal exit waiting forever)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
