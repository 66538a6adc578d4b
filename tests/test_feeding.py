"""The batched async path: the event loop takes ``async def`` messages from the inbox itself
(``sqsx.feeding``), finished coroutines are settled a batch at a time (``Inbox.done_many``,
``BatchFlusher.add_many``), and ``CoroutineRun`` keeps its contract without a Future."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from conftest import Consumer, wait_until

from sqsx import Hook, Processing, Queue, Verdict
from sqsx.backoff import BackoffPolicy
from sqsx.batching import BatchFlusher
from sqsx.dispatch import Outcome
from sqsx.fates import Fates
from sqsx.feeding import only_async_handlers
from sqsx.hooks import HookChain
from sqsx.inbox import Inbox
from sqsx.lanes import AsyncLane, CoroutineRun
from sqsx.message import Message
from sqsx.sqs import BatchEntry, EntryFailure

pytestmark = pytest.mark.timeout(60)

URL = "http://127.0.0.1:1/000000000000/q"
FATES = Fates(URL, BackoffPolicy(10, 10), "retry")


def _message(n: int, group: str | None = None) -> Message:
    attributes = {} if group is None else {"MessageGroupId": group}
    return Message.from_boto3(
        {"MessageId": f"m{n}", "ReceiptHandle": f"r{n}", "Body": "{}", "Attributes": attributes}
    )


# -- the inbox ------------------------------------------------------------------------------


def test_a_feeder_takes_ready_messages_in_batches_while_handler_threads_park() -> None:
    # Given an inbox whose ready messages go to a feeder, and a handler thread taking
    inbox = Inbox()
    told: list[int] = []
    inbox.feed_to(told.append)
    taken: list[Message | None] = []
    thread = threading.Thread(target=lambda: taken.append(inbox.take()), daemon=True)
    thread.start()

    # When five messages arrive
    assert inbox.reserve(5, 10)
    assert inbox.put([_message(n) for n in range(5)], reserved=5) == []

    # Then the feeder is told once with the count, takes them three and two at a time, and
    # the handler thread took none
    assert told == [5]
    assert [m.message_id for m in inbox.take_many(3)] == ["m0", "m1", "m2"]
    thread.join(0.2)
    assert thread.is_alive() and taken == []
    assert [m.message_id for m in inbox.take_many(10)] == ["m3", "m4"]
    assert inbox.running == 5

    # And once the feeder hands back, the handler thread takes the next message
    inbox.feed_to(None)
    assert inbox.reserve(1, 10)
    inbox.put([_message(9)], reserved=1)
    thread.join(5)
    assert [m.message_id for m in taken if m is not None] == ["m9"]


def test_done_many_frees_room_once_and_holds_back_a_failed_groups_later_messages() -> None:
    # Given a FIFO inbox full to its limit: two groups running, a later message of "a" waiting
    inbox = Inbox(fifo=True)
    assert inbox.reserve(3, 3)
    inbox.put([_message(0, "a"), _message(1, "b"), _message(2, "a")], reserved=3)
    first, second = inbox.take_many(3)
    assert (first.message_id, second.message_id) == ("m0", "m1")  # m2 waits for m0
    inbox.detach(2)  # their coroutines hold no thread
    room = threading.Thread(target=lambda: inbox.reserve(2, 3), daemon=True)

    # When m0 failed (retried in 5 s) and m1 succeeded, settled together
    held = inbox.done_many([(first, 5), (second, None)], detached=True)

    # Then the group's later message is held back behind m0, and the inbox is empty
    assert [(m.message_id, [h.item.message_id for h in hs]) for m, hs in held] == [("m0", ["m2"])]
    assert inbox.in_hand() == 0 and inbox.running == 0
    room.start()
    room.join(5)
    assert not room.is_alive()  # room for a whole batch again


# -- the flusher ----------------------------------------------------------------------------


def test_add_many_sends_whole_batches_at_once_and_keeps_the_rest_for_later() -> None:
    calls: list[list[str]] = []
    lock = threading.Lock()

    def send(entries: Sequence[BatchEntry]) -> list[EntryFailure]:
        with lock:
            calls.append([e.message_id for e in entries])
        return []

    flusher = BatchFlusher("DeleteMessageBatch", send, URL, max_delay=60.0, workers=2)
    flusher.add_many([BatchEntry(f"m{n}", f"r{n}") for n in range(25)])
    assert wait_until(lambda: len(calls) == 2, timeout=5)
    assert sorted(len(c) for c in calls) == [10, 10]  # two full calls at once
    assert flusher.pending() == 5  # the rest waits for company or its delay
    assert flusher.close(deadline=float("inf")) == 0
    with lock:
        sent = sorted(m for c in calls for m in c)
    assert sent == sorted(f"m{n}" for n in range(25))

    # After close, entries are sent at once by the caller, ten to a call
    flusher.add_many([BatchEntry(f"late{n}", f"l{n}") for n in range(12)])
    assert [len(c) for c in calls[-2:]] == [10, 2]


# -- runs -----------------------------------------------------------------------------------


def test_a_run_keeps_the_future_contract_for_runtimes_that_watch_it() -> None:
    import boto3

    queue = Queue(URL, boto3.client("sqs", region_name="us-east-1"))
    ended: list[list[str]] = []
    lane = AsyncLane(
        queue.dispatcher.event_loop,
        max_coroutines=4,
        grace_seconds=0.3,
        on_ended=lambda runs: ended.append([r.message.message_id for r in runs]),
    )
    gate = threading.Event()

    async def slow() -> None:
        await asyncio.get_running_loop().run_in_executor(None, gate.wait, 10)

    run = lane.start(CoroutineRun(slow, _message(1), "t", None, FATES, HookChain(), None))
    assert isinstance(run, CoroutineRun)
    with pytest.raises(TimeoutError):
        run.result(0.1)  # still running
    seen: list[Outcome] = []
    run.add_done_callback(lambda r: seen.append(r.result()))  # result() inside: no deadlock
    gate.set()
    assert run.result(5).verdict is Verdict.SUCCEEDED
    assert wait_until(lambda: seen != [], timeout=5)
    assert seen[0].verdict is Verdict.SUCCEEDED and lane.running == 0
    assert ended == [["m1"]]  # the runtime's batch callback had it first
    late: list[CoroutineRun] = []
    run.add_done_callback(late.append)  # already done: called at once
    assert late == [run]


# -- the engine -----------------------------------------------------------------------------


class _Threads(Hook):
    """Where each message's fate was decided: the thread of its ``after_process``."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, Verdict]] = {}

    def after_process(self, processing: Processing, outcome: Outcome) -> None:
        body = processing.message.raw.get("Body", "")
        self.seen[body] = (threading.current_thread().name, outcome.verdict)


def test_the_loop_takes_async_messages_itself_until_a_plain_handler_is_registered(
    sqs_client: Any, make_queue: Callable[..., str]
) -> None:
    # Given a queue whose only handler is async def, and a body no handler can read
    url = make_queue()
    hook = _Threads()
    queue = Queue(url, sqs_client, hooks=[hook])
    done: list[int] = []

    async def notify(context: dict[str, Any], n: int) -> None:
        await asyncio.sleep(0.01)
        done.append(n)

    queue.add_task_handler("notify", notify)
    assert only_async_handlers(queue.dispatcher)
    for n in range(20):
        queue.add_task("notify", n=n)
    sqs_client.send_message(QueueUrl=url, MessageBody="not-a-task")

    consumer = Consumer(queue, max_threads=2, max_messages=10, max_async=50)
    try:
        # When the worker drains it
        assert wait_until(lambda: len(done) == 20 and "not-a-task" in hook.seen, timeout=20)

        # Then the event loop's thread decided the unreadable message's fate (it took the
        # message itself: no handler thread was involved), and every coroutine ran
        assert hook.seen["not-a-task"][0] == "sqsx-async"
        assert sorted(done) == list(range(20))

        # When a plain handler is registered and its task sent
        ran_in: list[str] = []
        queue.add_task_handler(
            "plain", lambda context: ran_in.append(threading.current_thread().name)
        )
        assert not only_async_handlers(queue.dispatcher)
        queue.add_task("plain")
        queue.add_task("notify", n=99)

        # Then a handler thread runs it (never the loop), and async tasks still run
        assert wait_until(lambda: ran_in != [] and 99 in done, timeout=20)
        assert ran_in[0].startswith("sqsx-handler")
        assert wait_until(lambda: queue.stats().succeeded == 22, timeout=20)
    finally:
        consumer.stop()
    assert hook.seen["not-a-task"][1] is not Verdict.SUCCEEDED
