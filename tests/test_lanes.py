"""``sqsx.lanes`` without a server: the bound, the fates of what a coroutine did, cancelling,
abandoning one that swallows its cancellation, and the inbox's room for detached messages."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from sqsx import Queue, Verdict
from sqsx.backoff import BackoffPolicy
from sqsx.dispatch import Outcome
from sqsx.exceptions import ConfigurationError
from sqsx.fates import Fates
from sqsx.hooks import HookChain
from sqsx.inbox import Inbox
from sqsx.lanes import AsyncLane, CoroutineRun, is_async_function, is_async_handler
from sqsx.message import Message

pytestmark = pytest.mark.timeout(30)

URL = "http://127.0.0.1:1/000000000000/q"


def _message(n: int = 0) -> Message:
    return Message.from_boto3(
        {"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": "{}", "Attributes": {}}
    )


@pytest.fixture
def lane() -> AsyncLane:
    import boto3

    queue = Queue(URL, boto3.client("sqs", region_name="us-east-1"))
    return AsyncLane(queue.dispatcher.event_loop, max_coroutines=2, grace_seconds=0.3)


FATES = Fates(URL, BackoffPolicy(10, 10), "retry")


def _start(lane: AsyncLane, fn: Any, n: int = 0, limit: float | None = None) -> CoroutineRun:
    run = lane.start(CoroutineRun(fn, _message(n), "t", limit, FATES, HookChain(), None))
    assert isinstance(run, CoroutineRun)
    return run


def test_only_async_def_functions_take_the_lane() -> None:
    import functools

    async def coroutine_fn() -> None: ...

    def plain() -> None: ...

    assert is_async_function(coroutine_fn)
    assert is_async_handler(functools.partial(coroutine_fn))
    assert not is_async_handler(functools.partial(plain))
    assert not is_async_handler(lambda: coroutine_fn())  # a plain function returning one


def test_the_bound_holds_a_third_coroutine_until_a_slot_frees(lane: AsyncLane) -> None:
    release = threading.Event()

    async def wait() -> None:
        while not release.is_set():
            await asyncio.sleep(0.01)

    first, second = _start(lane, wait, 1), _start(lane, wait, 2)
    third: list[CoroutineRun] = []
    starter = threading.Thread(target=lambda: third.append(_start(lane, wait, 3)))
    starter.start()
    starter.join(0.3)
    assert starter.is_alive() and lane.running == 2  # waiting for a slot
    release.set()
    starter.join(5)
    assert [run.result(5).verdict for run in (first, second, *third)] == [Verdict.SUCCEEDED] * 3
    assert lane.peak == 2


def test_what_a_coroutine_did_maps_to_the_fates_of_a_sync_handler(lane: AsyncLane) -> None:
    async def broken() -> None:
        raise KeyError("x")

    async def slow() -> None:
        await asyncio.sleep(10)

    failed = _start(lane, broken).result(5)
    assert (failed.verdict, failed.retry_after, failed.reason) == (
        Verdict.RETRIED,
        10,
        "handler raised KeyError",
    )
    started = time.monotonic()
    timed_out = _start(lane, slow, limit=0.2).result(5)
    assert timed_out.verdict is Verdict.TIMED_OUT and timed_out.retry_after == 10
    assert time.monotonic() - started < 2


def test_one_that_swallows_its_cancellation_is_abandoned_after_the_grace(
    lane: AsyncLane,
) -> None:
    finished = threading.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(1.5)  # carries on past the 0.3 s grace
            finished.set()

    started = time.monotonic()
    outcome = _start(lane, stubborn, limit=0.2).result(5)
    assert outcome.verdict is Verdict.TIMED_OUT
    assert time.monotonic() - started < 1.2  # limit + grace, not its 1.5 s more
    assert lane.running == 0  # its slot is free
    assert finished.wait(5)  # it did go on, ignored


def test_cancel_all_and_close(lane: AsyncLane) -> None:
    async def forever() -> None:
        await asyncio.sleep(60)

    runs = [_start(lane, forever, n) for n in range(2)]
    assert not runs[0].cancel()  # a run ends through its lane, never cancelled bare
    assert lane.cancel_all() == 2
    outcomes = [run.result(5) for run in runs]
    assert all((o.verdict, o.retry_after) == (Verdict.RETRIED, 0) for o in outcomes)
    lane.close()
    refused = lane.start(CoroutineRun(forever, _message(9), "t", None, FATES, HookChain(), None))
    assert isinstance(refused, Outcome) and refused.retry_after == 0
    assert refused.reason == "not started: the runtime is stopping"


def test_max_coroutines_is_checked() -> None:
    import boto3

    queue = Queue(URL, boto3.client("sqs", region_name="us-east-1"))
    with pytest.raises(ConfigurationError, match="between 1 and 10000, got 0"):
        AsyncLane(queue.dispatcher.event_loop, max_coroutines=0, grace_seconds=1)


def test_a_detached_message_takes_no_room_until_done() -> None:
    # Given an inbox with room for two messages, both taken by handler threads
    inbox = Inbox()
    assert inbox.reserve(2, limit=2)
    inbox.put([_message(1), _message(2)], reserved=2)
    first, second = inbox.take(), inbox.take()
    assert first is not None and second is not None
    room: list[bool] = []
    waiter = threading.Thread(target=lambda: room.append(inbox.reserve(1, limit=2)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # full

    # When one is detached (its coroutine runs on the lane), a receiver gets its place
    inbox.detach()
    waiter.join(5)
    assert room == [True]

    # And done(detached=True) before or after detach() leaves the count right
    inbox.put([], reserved=1)
    inbox.done(first, None, detached=True)
    inbox.done(second, None, detached=True)  # its detach comes after its done
    inbox.detach()
    assert inbox.in_hand() == 0
    assert inbox.reserve(2, limit=2)
