"""The hard deadline of ``sqsx worker --processes N``, piece by piece: abandoned handlers that
still run, the child's watch over them, the supervisor's restart on exit 75 and its watchdog
for a silent child (real child processes, no SQS). The whole path against moto is in
tests/fault/test_fault_overrun.py."""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import wait_until

from sqsx import Message, Queue, TimeLimitExceeded
from sqsx.cli import build_parser, main
from sqsx.cli.link import SupervisorLink
from sqsx.cli.overrun import EXIT_IGNORED_LIMIT, OverrunWatch, describe_overrun
from sqsx.cli.supervisor import Fleet, child_argv, sum_snapshots, supervise
from sqsx.cli.watchdog import Liveness
from sqsx.stats import StatsSnapshot
from sqsx.timelimits import TimeLimits

MESSAGE = {
    "MessageId": "m-1",
    "ReceiptHandle": "r-1",
    "Body": "eyJrd2FyZ3MiOiB7fX0=",  # {"kwargs": {}}
    "MessageAttributes": {"TaskName": {"DataType": "String", "StringValue": "stubborn"}},
}


class Runaway:
    """A ``stubborn`` task under a 0.1 s limit and 0.1 s grace that swallows the stop
    exception and runs until ``release`` is set (at most 10 s)."""

    def __init__(self) -> None:
        client = boto3.client("sqs", region_name="us-east-1")  # process() makes no call
        self.queue = Queue("http://127.0.0.1:9/000000000000/q", client)
        self.queue.dispatcher.time_limits = TimeLimits(grace_seconds=0.1)
        self.release = threading.Event()
        self.abandoned = threading.Event()
        self.queue.add_task_handler("stubborn", self._stubborn, time_limit=0.1)
        self.thread = threading.Thread(target=self._process, daemon=True)

    def _stubborn(self, context: dict[str, Any]) -> None:
        deadline = time.monotonic() + 10
        while not self.release.is_set() and time.monotonic() < deadline:
            try:
                time.sleep(0.01)
            except TimeLimitExceeded:
                pass

    def _process(self) -> None:
        self.queue.dispatcher.process(
            Message.from_boto3(MESSAGE), on_abandon=lambda *_: self.abandoned.set()
        )

    @property
    def time_limits(self) -> TimeLimits:
        return self.queue.dispatcher.time_limits


@pytest.fixture
def runaway() -> Any:
    handler = Runaway()
    handler.thread.start()
    yield handler
    handler.release.set()
    handler.thread.join(10)


def test_an_abandoned_handler_is_listed_until_it_returns(runaway: Runaway) -> None:
    # Given a handler past its limit and grace, still running
    assert runaway.abandoned.wait(5)

    # Then it is listed as overrunning, with its message and task, once old enough
    (guard,) = runaway.time_limits.overrunning(0)
    assert (guard.message_id, guard.task, guard.limit) == ("m-1", "stubborn", 0.1)
    assert runaway.time_limits.overrunning(60) == []

    # And no longer once it returns
    runaway.release.set()
    runaway.thread.join(5)
    assert runaway.time_limits.overrunning(0) == []


def test_the_watch_stops_the_child_once_and_tells_the_supervisor(runaway: Runaway) -> None:
    # Given a child's link to its supervisor and a handler abandoned and still running
    parent, child = socket.socketpair()
    stops: list[bool] = []
    watch = OverrunWatch(
        runaway.time_limits,
        SupervisorLink(child.detach()),
        lambda: stops.append(True),
        hard_kill_after=1.0,
        queue_url="http://q",
    )
    assert runaway.abandoned.wait(5)

    # When the watch looks before and after the hard deadline
    assert watch.check() is False
    assert wait_until(watch.check, timeout=5)
    assert watch.check() is True

    # Then it asked one stop and sent one overrun line naming the message and task
    assert stops == [True]
    line = json.loads(parent.makefile("r").readline())
    assert (line["kind"], line["message_id"], line["task"], line["limit"]) == (
        "overrun", "m-1", "stubborn", 0.1,
    )  # fmt: skip
    assert line["late"] >= 1.0
    assert watch.ending().startswith("stopped: a handler ignored its time limit (message_id=m-1")
    parent.close()


def test_an_overrun_is_described_even_without_its_details() -> None:
    assert describe_overrun({"message_id": "m", "task": "t", "limit": 1.0, "late": 2.5}) == (
        "message_id=m task=t, time limit 1.0 s, still running 2.5 s after it was abandoned"
    )
    assert describe_overrun({}).startswith("message_id=? task=?")


def test_liveness_watches_from_the_first_line_to_the_final_one() -> None:
    liveness = Liveness()
    now = time.monotonic()
    assert liveness.silent_for(now + 100) == 0.0  # starting up: not watched
    liveness.heard("ready")
    assert 99 < liveness.silent_for(time.monotonic() + 100) < 101
    liveness.heard("final")
    assert liveness.silent_for(time.monotonic() + 100) == 0.0
    liveness.heard("stats")
    liveness.reset()
    assert liveness.silent_for(time.monotonic() + 100) == 0.0


# A child standing in for ``sqsx worker``: sends ``ready``, then what its first argument
# says, and exits 0 the second time it runs (a marker file).
CHILD = """
import json, os, socket, sys, time
mode, marker, fd = sys.argv[1], sys.argv[2], int(sys.argv[4])
link = socket.socket(fileno=fd)
def send(kind, **fields):
    link.sendall((json.dumps({"kind": kind, **fields}) + "\\n").encode())
stats = dict(received=0, succeeded=0, retried=0, no_retry=0, unprocessable=0, released=0,
             in_flight=0, elapsed=0.0, latency_p50=0.0, latency_p95=0.0, latency_max=0.0)
send("ready", url="http://q", on_queue="0 messages on the queue", limits="")
if os.path.exists(marker):
    send("final", stats=stats, ending="drained", code=0)
    sys.exit(0)
open(marker, "w").close()
if mode == "overrun":
    send("overrun", message_id="m-7", task="stubborn", limit=1.0, late=30.2)
    sys.exit(75)
time.sleep(60)  # silent
"""


def _supervise(tmp_path: Path, mode: str, silent_after: float = 60.0) -> tuple[str, int]:
    argv = [sys.executable, "-c", CHILD, mode, str(tmp_path / "marker")]
    fleet = Fleet(argv, 1, None)
    fleet.kill_silent_after = silent_after
    args = argparse.Namespace(
        queue_url="http://q", target="app:queue", processes=1, threads=1, max_messages=10,
        max_messages_total=None,
    )  # fmt: skip
    return supervise(fleet, args, lambda _text: None)


def test_a_child_that_exits_75_is_restarted_at_once_without_a_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sqsx.cli.supervisor")
    started = time.monotonic()
    assert _supervise(tmp_path, "overrun") == ("drained", 0)
    text = caplog.text
    assert (
        "worker process 0 restarted: a handler ignored its time limit (message_id=m-7 "
        "task=stubborn, time limit 1.0 s, still running 30.2 s after it was abandoned)"
    ) in text
    assert "died" not in text and "restarting it in" not in text
    assert text.count("started worker process 0") == 2
    assert time.monotonic() - started < 20


def test_a_child_gone_silent_is_killed_and_restarted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sqsx.cli")
    started = time.monotonic()
    assert _supervise(tmp_path, "silent", silent_after=2.0) == ("drained", 0)
    assert "worker process 0 pid=" in caplog.text
    assert "sent nothing for 2." in caplog.text or "sent nothing for 3." in caplog.text
    assert "died (killed by SIGKILL after " in caplog.text
    assert caplog.text.count("started worker process 0") == 2
    assert time.monotonic() - started < 30  # not the child's 60 s


def test_the_hard_deadline_options_go_to_the_children_that_use_them() -> None:
    args = build_parser().parse_args(
        ["worker", "app:queue", "--processes", "2", "--hard-kill-after", "5",
         "--kill-silent-after", "9"]
    )  # fmt: skip
    argv = child_argv(args.worker_parser, args)
    assert argv[argv.index("--hard-kill-after") + 1] == "5.0"
    assert "--kill-silent-after" not in argv  # the supervisor's own
    assert EXIT_IGNORED_LIMIT not in (0, 1, 2, 130, 143)


@pytest.mark.parametrize("option", ["--hard-kill-after", "--kill-silent-after"])
def test_the_hard_deadline_options_need_processes(option: str, capsys: Any) -> None:
    assert main(["worker", "app:queue", option, "5"]) == 2
    assert f"{option} needs --processes 2 or more" in capsys.readouterr().err


def test_a_fleet_counts_its_children_s_timeouts() -> None:
    one = StatsSnapshot(
        received=3, succeeded=1, retried=0, no_retry=0, unprocessable=0, released=0,
        in_flight=0, elapsed=1.0, latency_p50=0.0, latency_p95=0.0, latency_max=0.0,
        timed_out=2,
    )  # fmt: skip
    total = sum_snapshots([one, one], elapsed=1.0)
    assert (total.timed_out, total.processed) == (4, 6)
