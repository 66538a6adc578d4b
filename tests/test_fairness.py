"""The fairness policy of shared handler threads (``sqsx.fairness``): pure logic, and the
pool that applies it (``sqsx.sharing``) with in-memory sources."""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any

import pytest

from sqsx.exceptions import ConfigurationError
from sqsx.fairness import WeightedFairness, checked_weights
from sqsx.limits import RunLimits
from sqsx.message import Message
from sqsx.sharing import HandlerPool


def _serve(fairness: WeightedFairness, busy: set[int]) -> int:
    """One free thread: the first queue in the policy's order that has work."""
    for index in fairness.order():
        if index in busy:
            fairness.started(index)
            return index
    raise AssertionError("no queue has work")


@pytest.mark.parametrize(
    "weights",
    [
        pytest.param((1, 1), id="equal"),
        pytest.param((3, 1), id="three-to-one"),
        pytest.param((5, 2, 1), id="three-queues"),
    ],
)
def test_busy_queues_share_the_starts_by_weight(weights: tuple[int, ...]) -> None:
    # Given every queue with work
    fairness = WeightedFairness(weights)
    rounds = 40 * sum(weights)

    # When free threads start that many messages
    served = Counter(_serve(fairness, set(range(len(weights)))) for _ in range(rounds))

    # Then each queue got exactly its weight's share
    assert [served[i] for i in range(len(weights))] == [40 * w for w in weights]


def test_the_shares_are_interleaved_not_bursts() -> None:
    fairness = WeightedFairness((1, 1))
    assert [_serve(fairness, {0, 1}) for _ in range(6)] == [0, 1, 0, 1, 0, 1]


def test_a_quiet_queue_earns_no_credit_and_is_served_at_the_next_free_thread() -> None:
    # Given queue 0 served alone for a long time (queue 1 had nothing)
    fairness = WeightedFairness((1, 1))
    for _ in range(100):
        assert _serve(fairness, {0}) == 0

    # When queue 1 gets work, it is served at once, then the two alternate: no burst of
    # 100 starts for queue 1 to make up for its quiet time
    assert [_serve(fairness, {0, 1}) for _ in range(6)] == [1, 0, 1, 0, 1, 0]


def test_a_queue_that_cannot_start_its_message_is_skipped_without_cost() -> None:
    # Given queue 0 whose messages cannot start now (a FIFO group busy, a task capped)
    fairness = WeightedFairness((1, 1))
    assert [_serve(fairness, {1}) for _ in range(3)] == [1, 1, 1]
    # Then once it can, it is first in line
    assert fairness.order()[0] == 0


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        pytest.param((1,), "one weight per queue \\(2\\)", id="count"),
        pytest.param((0, 1), "from 1 to 1000", id="zero"),
        pytest.param((1, 1001), "from 1 to 1000", id="too-large"),
        pytest.param((1, 1.5), "from 1 to 1000", id="fraction"),
        pytest.param((True, 1), "from 1 to 1000", id="bool"),
    ],
)
def test_bad_weights_are_refused_with_the_bound(weights: Any, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        checked_weights(weights, 2)


def test_no_weights_means_equal_weights() -> None:
    assert checked_weights(None, 3) == (1, 1, 1)


# -- the pool, with in-memory sources --------------------------------------------------------


def _message(n: int) -> Message:
    return Message.from_boto3({"MessageId": str(n), "ReceiptHandle": str(n), "Body": "{}"})


class _Source:
    """An inbox stand-in: messages waiting, and a record of what the pool ran."""

    def __init__(self, name: str, ran: list[str], gate: threading.Event) -> None:
        self.name = name
        self.waiting: deque[Message] = deque()
        self._ran = ran
        self._gate = gate
        self._lock = threading.Lock()

    def take(self) -> Message | None:
        with self._lock:
            return self.waiting.popleft() if self.waiting else None

    def handle(self, message: Message) -> bool:
        self._gate.wait(5)  # the first handler runs only once both queues have work
        self._ran.append(self.name)
        return True


@pytest.mark.timeout(30)
def test_one_thread_alternates_between_a_flooded_and_a_quiet_queue() -> None:
    # Given one shared thread, 50 messages on "flood" and 3 on "quiet"
    ran: list[str] = []
    gate = threading.Event()
    pool = HandlerPool(1, (1, 1), RunLimits(max_messages_total=None, exit_when_idle_seconds=None))
    flood, quiet = _Source("flood", ran, gate), _Source("quiet", ran, gate)
    pool.seats[0].attach(flood.take, flood.handle, "flood")
    pool.seats[1].attach(quiet.take, quiet.handle, "quiet")
    pool.start()
    try:
        flood.waiting.extend(_message(n) for n in range(50))
        pool.seats[0].wake(50)
        quiet.waiting.extend(_message(100 + n) for n in range(3))
        pool.seats[1].wake(3)
        gate.set()

        # When the thread works through them (bounded wait)
        deadline = threading.Event()
        for _ in range(200):
            if len(ran) == 53:
                break
            deadline.wait(0.05)
    finally:
        pool.close()

    # Then all ran, and the quiet queue's three were among the first seven, not after the
    # flood (the first message may be the flood's, taken before the quiet ones arrived)
    assert len(ran) == 53
    assert Counter(ran[:7])["quiet"] == 3


@pytest.mark.timeout(30)
def test_an_idle_thread_wakes_for_a_message_queued_later() -> None:
    ran: list[str] = []
    gate = threading.Event()
    gate.set()
    pool = HandlerPool(2, (1,), RunLimits(max_messages_total=None, exit_when_idle_seconds=None))
    source = _Source("q", ran, gate)
    pool.seats[0].attach(source.take, source.handle, "q")
    pool.start()
    try:
        threading.Event().wait(0.2)  # both threads found nothing and wait
        source.waiting.append(_message(1))
        pool.seats[0].wake(1)
        woke = threading.Event()
        for _ in range(40):  # well under the 1 s rescan: the wake-up, not the rescan
            if ran:
                woke.set()
                break
            threading.Event().wait(0.01)
    finally:
        pool.close()
    assert woke.is_set(), "the message waited for the idle rescan, not the wake-up"


@pytest.mark.timeout(30)
def test_a_shared_thread_survives_an_error_outside_the_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given one shared thread and a source whose first message fails to settle
    ran: list[str] = []
    gate = threading.Event()
    gate.set()
    pool = HandlerPool(1, (1,), RunLimits(max_messages_total=None, exit_when_idle_seconds=None))
    source = _Source("q", ran, gate)
    calls = [0]

    def handle(message: Message) -> bool:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("settling failed")
        return source.handle(message)

    pool.seats[0].attach(source.take, handle, "http://127.0.0.1:1/0/q")
    source.waiting.extend([_message(1), _message(2)])
    pool.start()
    try:
        for _ in range(100):
            if ran:
                break
            threading.Event().wait(0.05)
    finally:
        pool.close()

    # Then the error was logged with the message and queue, and the thread ran the next one
    assert ran == ["q"]
    assert any(
        "message_id=1 queue_url=http://127.0.0.1:1/0/q" in r.getMessage() for r in caplog.records
    )
