"""The FIFO group gate shared by both runtimes (pure: no threads, no server)."""

from __future__ import annotations

from collections import deque

import pytest

from sqsx.ordering import HOLD_BACK_MARGIN_SECONDS, GroupGate, Hold, is_fifo

Item = tuple[str, int]  # (group, position)


def gate(fifo: bool = True) -> GroupGate[Item]:
    return GroupGate(fifo=fifo, group_of=lambda item: item[0])


def test_a_group_runs_one_at_a_time_in_order_and_groups_run_alongside() -> None:
    g, waiting = gate(), deque[Item]()
    assert g.admit([("a", 0), ("a", 1), ("b", 0)], waiting, now=0) == []
    assert g.pick(waiting) == ("a", 0)
    assert g.pick(waiting) == ("b", 0)  # ("a", 1) waits for ("a", 0)
    assert g.pick(waiting) is None
    assert g.finish(("a", 0), None, waiting, now=0) == []
    assert g.pick(waiting) == ("a", 1)


def test_a_failure_gives_back_the_rest_of_its_group_only() -> None:
    g, waiting = gate(), deque[Item]()
    g.admit([("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2)], waiting, now=0)
    first = g.pick(waiting)
    assert first == ("a", 0)
    held = g.finish(first, 30, waiting, now=0)
    # visible at once: SQS's group lock keeps them behind the failed message, which is in
    # flight for 30 s (hiding them would lock the group past the failed message's return)
    assert held == [Hold(("a", 1), 0), Hold(("a", 2), 0)]
    assert list(waiting) == [("b", 0), ("b", 1)]


def test_a_blocked_group_holds_back_what_a_server_without_the_group_lock_hands_out() -> None:
    g, waiting = gate(), deque[Item]()
    g.admit([("a", 0)], waiting, now=100)
    g.finish(g.pick(waiting) or ("?", 0), 10, waiting, now=100)  # back at 110
    # a later receive (at 104) brings the group's later messages and another group's
    held = g.admit([("a", 1), ("c", 0)], waiting, now=104)
    assert held == [Hold(("a", 1), 6 + HOLD_BACK_MARGIN_SECONDS)]
    assert list(waiting) == [("c", 0)]
    # once the failed message is back, the group flows again
    assert g.admit([("a", 0)], waiting, now=110) == []
    assert list(waiting) == [("c", 0), ("a", 0)]


def test_a_success_or_a_standard_queue_holds_back_nothing() -> None:
    g, waiting = gate(), deque[Item]()
    g.admit([("a", 0), ("a", 1)], waiting, now=0)
    assert g.finish(g.pick(waiting) or ("?", 0), None, waiting, now=0) == []
    standard, plain = gate(fifo=False), deque[Item]()
    standard.admit([("a", 0), ("a", 1)], plain, now=0)
    assert standard.pick(plain) == ("a", 0)
    assert standard.pick(plain) == ("a", 1)  # no group rule
    assert standard.finish(("a", 0), 30, plain, now=0) == []


def test_a_blocked_group_never_holds_back_past_twelve_hours() -> None:
    g, waiting = gate(), deque[Item]()
    g.admit([("a", 0)], waiting, now=0)
    g.finish(g.pick(waiting) or ("?", 0), 43_200, waiting, now=0)
    [hold] = g.admit([("a", 1)], waiting, now=0)
    assert hold.seconds == 43_200


def test_blocked_groups_can_be_shared_across_gates() -> None:
    blocked: dict[str | None, float] = {}
    first = GroupGate[Item](fifo=True, group_of=lambda item: item[0], blocked=blocked)
    waiting = deque[Item]()
    first.admit([("a", 0)], waiting, now=0)
    first.finish(first.pick(waiting) or ("?", 0), 5, waiting, now=0)
    second = GroupGate[Item](fifo=True, group_of=lambda item: item[0], blocked=blocked)
    assert second.admit([("a", 1)], deque(), now=1) == [Hold(("a", 1), 5)]


@pytest.mark.parametrize(
    ("name", "fifo"),
    [
        ("https://sqs.us-east-1.amazonaws.com/1/q.fifo", True),
        ("arn:aws:sqs:us-east-1:1:q.fifo", True),
        ("https://sqs.us-east-1.amazonaws.com/1/q", False),
        (None, False),
    ],
)
def test_is_fifo(name: object, fifo: bool) -> None:
    assert is_fifo(name) is fifo
