"""The head-to-head: every contender on one real local SQS server, interleaved.

One SQS server (LocalStack, or moto) runs in its own process and the calls it serves are
counted by operation (``bench.peers.servers``). For each round, each handler time and
each contender (in an order rotated every round, so no contender always runs first or
last), a fresh queue is created, filled with ``count`` tasks in the contender's wire
format, and consumed by the contender's runner in its own process and venv with
``threads`` threads until every task has run. Measured per run:

- msgs/s: ``count - 1`` tasks over the wall time between the first and the last distinct
  task handled (start-up and shutdown left out: they differ by design);
- client CPU s per 1,000 messages: the runner process's CPU time (every thread, user +
  system) over that same window;
- SQS calls per 1,000 messages, by operation, counted at the server for the whole consume
  run (start-up, idle polls and the stop included);
- duplicates (tasks run more than once), tasks left in the queue after the stop, and lost
  tasks (never run and no longer in the queue).

Each figure in the table is the median over the rounds.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.peers.contenders import CONTENDERS, Contender, ensure_venv
from bench.peers.servers import Server, running

_ABBREVIATIONS = {
    "ReceiveMessage": "R",
    "DeleteMessage": "d",
    "DeleteMessageBatch": "D",
    "ChangeMessageVisibility": "v",
    "ChangeMessageVisibilityBatch": "V",
    "GetQueueAttributes": "A",
    "GetQueueUrl": "U",
    "ListQueues": "L",
    "CreateQueue": "C",
}


@dataclass
class Run:
    """One contender's consume run."""

    contender: str
    handler_ms: float
    count: int
    rate: float
    cpu_per_1000: float
    cpu_whole_run_per_1000: float
    calls_per_1000: dict[str, float]
    duplicates: int
    left: int
    lost: int
    wall_seconds: float
    threads: int = 10


@dataclass
class Summary:
    """The median of a contender's runs at one handler time."""

    contender: str
    handler_ms: float
    runs: list[Run] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(float(getattr(run, name)) for run in self.runs)

    def calls(self) -> dict[str, float]:
        order = list(_ABBREVIATIONS)
        operations = sorted(
            {op for run in self.runs for op in run.calls_per_1000},
            key=lambda op: (order.index(op) if op in order else len(order), op),
        )
        return {
            op: statistics.median(run.calls_per_1000.get(op, 0.0) for run in self.runs)
            for op in operations
        }


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def _runner(contender: Contender, mode: str, url: str, args: Sequence[str], srv: Server) -> Any:
    command = [
        str(contender.python()),
        str(contender.script()),
        mode,
        "--endpoint",
        srv.endpoint,
        "--queue-url",
        url,
        *args,
    ]
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    return subprocess.Popen(command, cwd=contender.script().parent, env=env)


def _wait(process: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
        raise RuntimeError(f"{process.args!r} did not finish in {timeout:.0f}s") from None
    if code != 0:
        raise RuntimeError(f"{process.args!r} exited with {code}")


def run_one(contender: Contender, srv: Server, count: int, threads: int, handler_ms: float) -> Run:
    """Fill a fresh queue and consume it with ``contender``; the run's figures."""
    client = _client(srv.endpoint)
    name = f"bench-{uuid.uuid4().hex[:10]}"
    url = client.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    filler = contender if contender.fills_itself else CONTENDERS[0]
    common = ["--count", str(count), "--threads", str(threads), "--handler-ms", str(handler_ms)]
    _wait(_runner(filler, "fill", url, common, srv), 600)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "record.json"
        before = srv.calls()
        started = time.perf_counter()
        _wait(_runner(contender, "consume", url, [*common, "--out", str(out)], srv), 900)
        wall = time.perf_counter() - started
        after = srv.calls()
        record = json.loads(out.read_text())
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    left = sum(
        int(attributes[k])
        for k in (
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        )
    )
    client.delete_queue(QueueUrl=url)
    handled = {int(n): c for n, c in record["handled"].items()}
    calls = {op: after[op] - before.get(op, 0) for op in after if after[op] > before.get(op, 0)}
    first, last = record["first"], record["last"] or record["stopped"]
    window = max(last[0] - first[0], 1e-9)
    return Run(
        contender=contender.name,
        handler_ms=handler_ms,
        count=count,
        rate=(len(handled) - 1) / window,
        cpu_per_1000=(last[1] - first[1]) / max(len(handled) - 1, 1) * 1000,
        cpu_whole_run_per_1000=(record["stopped"][1] - record["ready"][1]) / count * 1000,
        calls_per_1000={op: n / count * 1000 for op, n in sorted(calls.items())},
        duplicates=sum(c - 1 for c in handled.values()),
        left=left,
        lost=max(count - len(handled) - left, 0),
        wall_seconds=wall,
        threads=threads,
    )


def run_all(
    count: int = 2000,
    threads: int = 10,
    handler_ms: Sequence[float] = (0.0, 10.0),
    rounds: int = 1,
    only: Sequence[str] = (),
    server: str = "moto",
) -> list[Summary]:
    """Every contender (or those whose runner key is in ``only``), interleaved."""
    contenders = [c for c in CONTENDERS if not only or c.key in only]
    for contender in contenders:
        _progress(f"venv for {contender.name}")
        ensure_venv(contender)
    summaries = {(c.name, ms): Summary(c.name, ms) for c in contenders for ms in handler_ms}
    with running(server) as srv:
        for round_ in range(rounds):
            for ms in handler_ms:
                shift = round_ % len(contenders)
                for contender in contenders[shift:] + contenders[:shift]:
                    _progress(f"round {round_ + 1}/{rounds}: {contender.name}, {ms:g} ms")
                    result = run_one(contender, srv, count, threads, ms)
                    summaries[contender.name, ms].runs.append(result)
    return list(summaries.values())


def as_dict(summary: Summary) -> dict[str, Any]:
    return {
        "contender": summary.contender,
        "handler_ms": summary.handler_ms,
        "runs": [asdict(run) for run in summary.runs],
    }


def from_dict(item: dict[str, Any]) -> Summary:
    """A summary read back from ``as_dict``'s JSON."""
    return Summary(item["contender"], item["handler_ms"], [Run(**run) for run in item["runs"]])


def markdown(summaries: Sequence[Summary]) -> str:
    """The comparison table: one row per contender and handler time."""
    lines = [
        "| handler | consumer | msgs/s | client CPU s / 1k msgs | SQS calls / 1k msgs "
        "(by operation) | lost / dup / left |",
        "|---|---|---|---|---|---|",
    ]
    for summary in sorted(summaries, key=lambda s: (s.handler_ms, -s.median("rate"))):
        calls = summary.calls()
        spelled = " ".join(
            f"{_ABBREVIATIONS.get(op, op)} {n:.0f}"
            if n >= 10
            else f"{_ABBREVIATIONS.get(op, op)} {n:.1f}"
            for op, n in calls.items()
        )
        total = sum(calls.values())
        integrity = "/".join(f"{summary.median(k):.0f}" for k in ("lost", "duplicates", "left"))
        lines.append(
            f"| {summary.handler_ms:g} ms | {summary.contender} | {summary.median('rate'):,.0f} "
            f"| {summary.median('cpu_per_1000'):.2f} "
            f"| {total:,.0f} ({spelled}) | {integrity} |"
        )
    return "\n".join(lines)


def _progress(what: str) -> None:
    print(f"... {what}", file=sys.stderr, flush=True)


def plot(summaries: Sequence[Summary], path: Path) -> None:
    """Two panels, msgs/s and client CPU per 1,000 messages, bars per contender and
    handler time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(s.contender for s in summaries))
    times = sorted({s.handler_ms for s in summaries})
    by_key = {(s.contender, s.handler_ms): s for s in summaries}
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.8 / len(times)
    for axis, (metric, label) in zip(
        axes,
        (("rate", "messages per second"), ("cpu_per_1000", "client CPU s / 1,000 msgs")),
        strict=True,
    ):
        for i, ms in enumerate(times):
            values = [by_key[n, ms].median(metric) if (n, ms) in by_key else 0 for n in names]
            axis.bar(
                [x + i * width for x in range(len(names))],
                values,
                width,
                label=f"{ms:g} ms handler",
            )
        axis.set_xticks([x + width * (len(times) - 1) / 2 for x in range(len(names))])
        axis.set_xticklabels(
            [n.replace(" + ", "\n+ ").replace(" (", "\n(") for n in names], fontsize=8
        )
        axis.set_ylabel(label)
        axis.grid(axis="y", alpha=0.3)
        axis.legend(fontsize=8)
    first = summaries[0].runs[0]
    figure.suptitle(
        f"{first.count:,} tasks, {first.threads} threads, one real local SQS server "
        "(higher msgs/s, lower CPU: better)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
