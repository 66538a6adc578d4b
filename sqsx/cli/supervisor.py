"""``sqsx worker --processes N``: N worker processes under one supervisor.

Each child is a fresh interpreter running ``python -m sqsx worker ... --processes 1``: it
imports ``MODULE:ATTR`` and builds its own queue and boto3 client (nothing is pickled or
forked, so no lock or connection is inherited half-held), and it runs exactly the code of a
single worker, stop sequence included. ``subprocess`` rather than ``multiprocessing``: the
child needs no bootstrap of ours, and what runs in it is what a user runs by hand.

Children start in their own session, so a Ctrl-C on the terminal reaches the supervisor
only; the supervisor forwards each SIGINT/SIGTERM it gets to every child, so the first one
stops them gracefully and a second one at once, as for one worker. A child talks to the
supervisor over a socket (``--supervised-fd``): a ``ready`` line once it starts consuming,
its counters every half second (the seam a metrics exporter can sum), and a ``final`` line
with how it ended. When the supervisor dies, the child sees the socket close and stops
gracefully.

Fates of a child that exits, while no stop was asked:

- exit 0 (``--drain``, ``--max-messages-total``, ``--exit-when-idle``): done, not restarted;
- exit 1 or 2 (SQS refused the queue; ``MODULE:ATTR`` does not import): the cause is not in
  the child, so the supervisor stops the others and exits with that code;
- exit 75: a handler ran past its hard deadline (``sqsx.cli.overrun``): restarted at once;
- anything else (a signal, a crash, a kill by ``sqsx.cli.watchdog`` for a child gone
  silent): restarted after a capped backoff (0.5 s doubling to 30 s, reset once a child
  ran for a minute); after 5 children in a row died before they started consuming, the
  supervisor gives up with exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Callable

from sqsx.cli.fleet import Child, Fleet
from sqsx.cli.overrun import EXIT_IGNORED_LIMIT, describe_overrun
from sqsx.cli.progress import describe_stop
from sqsx.stats import sum_snapshots
from sqsx.stopping import StopRequests

__all__ = ["Fleet", "child_argv", "sum_snapshots", "supervise"]

logger = logging.getLogger(__name__)

_TICK_SECONDS = 0.1
_BACKOFF_FIRST, _BACKOFF_CAP = 0.5, 30.0
_STABLE_SECONDS = 60.0
_START_FAILURES_LIMIT = 5
_FATAL_CODES = (1, 2)
_SUPERVISOR_ONLY = ("help", "processes", "max_messages_total", "supervised_fd", "kill_silent_after")


def child_argv(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The ``sqsx worker`` command line of one child: every option given (that differs
    from its default), ``--processes 1``, no ``--max-messages-total`` (the fleet adds each
    child's share)."""
    argv = [sys.executable, "-m", "sqsx", "worker"]
    for action in parser._actions:  # argparse has no public list of a parser's options
        if action.dest in _SUPERVISOR_ONLY:
            continue
        value = getattr(args, action.dest, None)
        if not action.option_strings:
            argv += [str(v) for v in value] if isinstance(value, list) else [str(value)]
        elif isinstance(value, tuple):  # --weights
            argv += [action.option_strings[-1], ",".join(map(str, value))]
        elif value != action.default and value is not None:
            flag = action.option_strings[-1]
            argv += [flag] if value is True else [flag, str(value)]
    return [*argv, "--processes", "1"]


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def supervise(
    fleet: Fleet,
    args: argparse.Namespace,
    say: Callable[[str], None],
    on_ready: Callable[[], None] = lambda: None,
) -> tuple[str, int]:
    """Run the fleet's children until they are done or stopped (SIGINT/SIGTERM handlers are
    installed meanwhile); ``on_ready()`` runs once the first child consumes. Returns how it
    ended and the exit code."""
    requests = StopRequests(args.queue_url or " ".join(args.target))
    failure: tuple[str, int] | None = None
    start_failures = 0
    announced = False
    with requests.watching(signals=True) as (stop, force):
        for child in fleet.children:
            fleet.spawn(child)
        forwarded = 0
        while not all(child.done for child in fleet.children):
            time.sleep(_TICK_SECONDS)
            wanted = 2 if force.is_set() else 1 if stop.is_set() or failure else 0
            if wanted > forwarded:
                signum = requests.signals[-1] if requests.signals else signal.SIGTERM
                _signal_all(fleet, signum)
                forwarded = wanted
            if not announced and _announce(fleet, args, say):
                announced = True
                on_ready()
            for child in fleet.children:
                outcome = _tend(child, fleet, stopping=forwarded > 0)
                if outcome == "start-failure":
                    start_failures += 1
                    if start_failures >= _START_FAILURES_LIMIT:
                        failure = failure or (
                            f"{start_failures} worker processes in a row died before they "
                            "started consuming: giving up",
                            2,
                        )
                elif outcome == "started":
                    start_failures = 0
                elif outcome.startswith("fatal:"):
                    code = int(outcome.split(":")[1])
                    failure = failure or (
                        f"worker process {child.index} exited with code {code}"
                        f"{'' if child.ready else ' before it started'} (its error is above); "
                        "stopping the others",
                        code,
                    )
    return _ending(fleet, requests, failure, args.max_messages_total)


def _tend(child: Child, fleet: Fleet, *, stopping: bool) -> str:
    """Look after one slot; returns what happened (``""``, ``started``, ``start-failure``,
    ``fatal:CODE``)."""
    if child.done:
        return ""
    now = time.monotonic()
    if child.process is None or child.process.poll() is None:
        if child.process is not None:
            child.liveness.check(child.index, child.process.pid, fleet.kill_silent_after, now)
        if child.restart_at is not None and now >= child.restart_at:
            if stopping:
                child.done = True
                return ""
            child.restart_at = None
            fleet.spawn(child)
        if child.ready and child.crashes and now - child.started_at > _STABLE_SECONDS:
            child.crashes = 0
        if child.ready and not child.seen_ready:
            child.seen_ready = True
            return "started"
        return ""
    code = child.process.returncode
    child.process.wait()
    time.sleep(0.05)  # let the reader thread take the child's last lines
    was_ready = child.ready is not None
    child.retire()
    child.process = None
    if stopping or code == 0:
        child.done = True
        return ""
    if code in _FATAL_CODES:
        child.done = True
        return f"fatal:{code}"
    if child.share is not None and child.processed() >= child.share:
        child.done = True
        return ""
    if code == EXIT_IGNORED_LIMIT:
        logger.warning(
            "worker process %d restarted: a handler ignored its time limit (%s)",
            child.index,
            describe_overrun(child.overrun or {}),
        )
        child.restart_at = now
        return ""
    delay = min(_BACKOFF_FIRST * 2**child.crashes, _BACKOFF_CAP)
    child.crashes += 1
    child.restart_at = now + delay
    logger.warning(
        "worker process %d died (%s%s)%s; restarting it in %.1f s",
        child.index,
        _describe_exit(code),
        child.liveness.why(),
        "" if was_ready else " before it started consuming",
        delay,
    )
    return "" if was_ready else "start-failure"


def _signal_all(fleet: Fleet, signum: int) -> None:
    for child in fleet.children:
        if child.process is not None and child.process.poll() is None:
            try:
                os.kill(child.process.pid, signum)
            except ProcessLookupError:
                pass


def _announce(fleet: Fleet, args: argparse.Namespace, say: Callable[[str], None]) -> bool:
    ready = [child.ready for child in fleet.children if child.ready]
    if not ready:
        return False
    first = ready[0]
    say(
        f"sqsx worker: {first['url']}, {first['on_queue']}, {args.processes} processes x "
        f"{args.threads} threads, up to {args.max_messages} per receive{first['limits']}"
    )
    return True


def _ending(
    fleet: Fleet, requests: StopRequests, failure: tuple[str, int] | None, max_total: int | None
) -> tuple[str, int]:
    if failure is not None:
        return f"stopped: {failure[0]}", failure[1]
    stopped = describe_stop(forced=requests.forced, signals=requests.signals)
    if stopped is not None:
        return stopped
    if max_total is not None and fleet.stats().received >= max_total:
        return f"done with its {max_total:,} messages (--max-messages-total)", 0
    endings = [child.final["ending"] for child in fleet.children if child.final]
    return (endings[0] if endings else "stopped"), 0
