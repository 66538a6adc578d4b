"""The async lane: ``async def`` handlers that run without holding a thread each.

A runtime that owns a lane passes it to ``Dispatcher.begin``. For a message whose handler is
an ``async def`` function, ``begin`` prepares the message in the runtime's thread (hooks'
``resolve_message``, decoding, kwargs), waits for one of the lane's ``max_coroutines``
slots, hands the rest to the queue's event loop (``sqsx.aio``) and returns at once with a
``CoroutineRun`` (``sqsx.runs``) whose result is the message's ``Outcome``. The thread moves
on to its next message; the run is resolved, in the loop's thread, once the coroutine is
over. Every other handler keeps the plain path (``begin``
returns the ``Outcome`` itself); a plain function that returns an awaitable has it run to
completion in its own thread, as ``Dispatcher.process`` always did.

On the loop, one asyncio task per message runs the hooks' ``before_process``, the handler,
and ``after_process`` with the same ``Processing`` object; context variables are the
task's own, so a hook's context (a tracing span) is current inside the coroutine and is
detached where it was attached. What the coroutine did is turned into the ``Outcome`` by
the queue's ``Fates`` (``sqsx.fates``), never here:

- returned, raised ``Retry``/``NoRetry``/anything: as for a sync handler;
- past its time limit: cancelled, verdict ``TIMED_OUT`` with its backoff; one that
  swallows the cancellation and is still running ``grace_seconds`` later is abandoned: its
  message gets the same ``TIMED_OUT`` outcome then, its slot is freed, and whatever the
  task does afterwards is ignored;
- cancelled by the runtime (``cancel_all``: the stop deadline, a second stop request, the
  Lambda deadline guard): retried at once (visibility 0), its handler did not finish.

Hand-overs and completions go in batches, so that the cost per message stays small when
thousands of coroutines run: the threads' hand-overs wake the loop once per burst (not once
per message), and the runs that ended in one pass of the loop are handed to the runtime's
``on_ended`` in one call, their slots freed under one lock; a runtime without ``on_ended``
watches each run (``CoroutineRun.add_done_callback``).

``close`` refuses further starts: a message still waiting for a slot then gets the
"not started" outcome (visible again at once) without running. A coroutine that blocks the
loop (``time.sleep``, a blocking socket call) stalls every coroutine of the queue: use
``await asyncio.sleep`` / ``asyncio.to_thread`` there.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Sequence

from sqsx.aio import EventLoopThread
from sqsx.exceptions import ConfigurationError
from sqsx.outcome import Outcome
from sqsx.runs import CoroutineRun

__all__ = [
    "DEFAULT_MAX_COROUTINES",
    "MAX_COROUTINES_LIMIT",
    "AsyncLane",
    "CoroutineRun",
    "is_async_function",
    "is_async_handler",
]

logger = logging.getLogger("sqsx.dispatch")

#: Default bound on coroutines running at once, per worker run or per ``LambdaHandler``.
DEFAULT_MAX_COROUTINES = 100
#: The largest bound accepted.
MAX_COROUTINES_LIMIT = 10_000

_TIME_LIMIT = "time_limit"
_CANCELLED = "cancelled"


_is_coroutine_function = functools.lru_cache(maxsize=1024)(inspect.iscoroutinefunction)


def is_async_function(func: object) -> bool:
    """True when ``func`` is an ``async def`` function (or a partial of one); cached."""
    try:
        return _is_coroutine_function(func)
    except TypeError:  # an unhashable callable
        return inspect.iscoroutinefunction(func)


def is_async_handler(call: Callable[[], object]) -> bool:
    """True when ``call`` (a ``functools.partial`` of a handler, as the dispatcher prepares
    it) calls an ``async def`` function."""
    func = getattr(call, "func", None)
    return func is not None and is_async_function(func)


class AsyncLane:
    """A bound on coroutines running at once on one event loop, and their lifecycle.

    Args:
        loop: the queue's event loop (``Dispatcher.event_loop``).
        max_coroutines: coroutines running at once (1 to 10,000); a runtime thread that
            hands over one more waits for a slot.
        grace_seconds: after a time limit cancels a coroutine, how long it may take to end
            before it is abandoned.
        on_ended: called in the loop's thread with the runs that ended (each with its
            ``outcome``), a batch at a time, before their slots are freed.
    """

    def __init__(
        self,
        loop: EventLoopThread,
        *,
        max_coroutines: int,
        grace_seconds: float,
        on_ended: Callable[[Sequence[CoroutineRun]], None] | None = None,
    ) -> None:
        if not 1 <= max_coroutines <= MAX_COROUTINES_LIMIT:
            raise ConfigurationError(
                f"max_coroutines must be between 1 and {MAX_COROUTINES_LIMIT}, got {max_coroutines}"
            )
        self.max_coroutines = max_coroutines
        self.grace_seconds = grace_seconds
        self._loop = loop
        self._slots = threading.Condition(threading.Lock())
        self._runs: set[CoroutineRun] = set()
        self._starting: list[CoroutineRun] = []  # handed over, not yet begun on the loop
        self._ended: list[CoroutineRun] = []  # over, not yet handed to the runtime (loop only)
        self._on_ended = on_ended
        self._closed = False
        self.peak = 0  # most coroutines seen running at once

    @property
    def running(self) -> int:
        """Coroutines holding a slot."""
        return len(self._runs)

    @property
    def free(self) -> int:
        """Slots free now."""
        return max(self.max_coroutines - len(self._runs), 0)

    def start(self, run: CoroutineRun) -> CoroutineRun | Outcome:
        """Wait for a slot and start ``run``'s coroutine on the loop; ``run``, or the "not
        started" ``Outcome`` once the lane is closed.

        Called in the loop's thread (``sqsx.feeding``), it never waits (the caller takes
        no more than ``free``) and begins the coroutine at once."""
        on_loop = self._loop.is_current()
        with self._slots:
            while not on_loop and not self._closed and len(self._runs) >= self.max_coroutines:
                self._slots.wait()
            if self._closed:
                return run.fates.cancelled(run.message, run.label, started=False)
            self._runs.add(run)
            self.peak = max(self.peak, len(self._runs))
            if not on_loop:
                # One wake-up of the loop per burst of hand-overs, not one per message; under
                # the lock, so that a ``cancel_all`` that sees the run is scheduled after it.
                self._starting.append(run)
                if len(self._starting) == 1:
                    self._loop.call_soon(self._begin_starting)
        if on_loop:  # before any ``cancel_all`` callback, which the loop runs after this
            self._begin(run, asyncio.get_running_loop())
        return run

    def close(self) -> None:
        """Start no more coroutines (idempotent); those running go on."""
        with self._slots:
            self._closed = True
            self._slots.notify_all()

    def cancel_all(self) -> int:
        """Cancel every running coroutine (their messages are retried at once); how many."""
        with self._slots:
            runs = list(self._runs)
        for run in runs:
            self._loop.call_soon(self._cut, run, _CANCELLED)
        return len(runs)

    def cancel_running(self, queue_url: str) -> None:
        """At a stop deadline: cancel the running coroutines and wait (up to the grace
        period and a second) for their messages to be settled."""
        count = self.cancel_all()
        if count:
            logger.warning(
                "cancelling %d running coroutine%s: their messages are visible again at once "
                "queue_url=%s",
                count,
                "" if count == 1 else "s",
                queue_url,
            )
            self.wait_idle(time.monotonic() + self.grace_seconds + 1.0)

    def wait_idle(self, deadline: float) -> bool:
        """Wait until no coroutine holds a slot, up to ``deadline`` (``time.monotonic()``);
        ``True`` when none does."""
        with self._slots:
            while self._runs:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._slots.wait(min(left, 0.1))
            return True

    # -- on the loop ------------------------------------------------------------------------

    def _begin_starting(self) -> None:
        loop = asyncio.get_running_loop()
        with self._slots:
            starting, self._starting = self._starting, []
        for run in starting:
            self._begin(run, loop)

    def _begin(self, run: CoroutineRun, loop: asyncio.AbstractEventLoop) -> None:
        run.task = run.context.run(loop.create_task, self._drive(run))  # in its context
        if run.limit is not None:
            run.timer = loop.call_later(run.limit, self._cut, run, _TIME_LIMIT)

    def _cut(self, run: CoroutineRun, why: str) -> None:
        if run.outcome is not None or run.cut is not None or run.task is None:
            return
        run.cut = why
        run.task.cancel()
        asyncio.get_running_loop().call_later(self.grace_seconds, self._abandon, run)

    def _abandon(self, run: CoroutineRun) -> None:
        if run.outcome is not None:
            return
        logger.warning(
            "coroutine still running %gs after it was cancelled: abandoned, its slot freed "
            "message_id=%s task=%s queue_url=%s",
            self.grace_seconds,
            run.message.message_id,
            run.label,
            run.fates.queue_url,
        )
        elapsed = time.perf_counter() - run.started
        self._settle(run, self._outcome(run, None, elapsed))

    async def _drive(self, run: CoroutineRun) -> None:
        processing, chain = run.processing, run.chain
        if processing is not None:
            chain.before(processing)
        run.started = started = time.perf_counter()
        err: BaseException | None = None
        try:
            result = run.call()
            if inspect.isawaitable(result):
                await result
        except BaseException as raised:  # every fate is decided below; the loop survives
            err = raised
        if run.outcome is None:  # not abandoned meanwhile
            self._settle(run, self._outcome(run, err, time.perf_counter() - started))

    def _outcome(self, run: CoroutineRun, err: BaseException | None, elapsed: float) -> Outcome:
        fates = run.fates
        if run.cut == _TIME_LIMIT and run.limit is not None:
            return fates.timed_out(run.message, run.label, run.limit, elapsed)
        if run.cut == _CANCELLED:
            return fates.cancelled(run.message, run.label, started=True)
        return fates.handled(run.message, run.label, err, elapsed)

    def _settle(self, run: CoroutineRun, outcome: Outcome) -> None:
        if run.timer is not None:
            run.timer.cancel()
        if run.processing is not None:
            run.chain.after(run.processing, outcome)  # in the run's task, with its context
        run.outcome = outcome
        self._ended.append(run)
        if len(self._ended) == 1:  # the first of this pass: hand them over after it
            asyncio.get_running_loop().call_soon(self._hand_over_ended)

    def _hand_over_ended(self) -> None:
        ended, self._ended = self._ended, []
        try:
            if self._on_ended is not None:
                self._on_ended(ended)  # the runtime settles them, here in the loop's thread
        except Exception:  # the loop must survive; the runtime logs per message
            logger.exception("settling %d ended coroutines failed", len(ended))
        finally:
            with self._slots:
                self._runs.difference_update(ended)
                self._slots.notify(len(ended))  # a slot each: as many waiting threads
            for run in ended:
                run.finish()  # done: its callbacks run, ``result`` returns
