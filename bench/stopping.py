"""How fast ``sqsx worker`` ends: ``--drain`` after the last message, and a graceful stop
(SIGINT) on an idle queue, with the default options, on the embedded local SQS.

    python -m bench.stopping [--runs N]

Each run starts a worker subprocess (``tests/cli_app.py``'s ``record`` task). The drain
time runs from the moment the handler wrote its record to the process's exit; the stop
time from the SIGINT to the exit. Both include the interpreter's own exit. The target is
2 s for each (issue 11); the figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqsx import Queue
from sqsx.cli.target import make_client
from sqsx.local import LocalSqs

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 2.0


def _worker(url: str, endpoint: str, record: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SQSX_", "AWS_"))}
    env["SQSX_TEST_RECORD"] = str(record)
    command = [sys.executable, "-m", "sqsx", "worker", "cli_app:queue", "--app-dir", "tests"]
    return subprocess.Popen(
        [*command, "--queue-url", url, "--endpoint-url", endpoint, *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for_record(record: Path, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while not record.stat().st_size:
        if time.monotonic() > deadline:
            raise TimeoutError("the handler did not run")
        time.sleep(0.005)
    return time.monotonic()


def measure(runs: int) -> tuple[list[float], list[float]]:
    """(drain exit seconds, graceful stop exit seconds), one of each per run."""
    drains: list[float] = []
    stops: list[float] = []
    with LocalSqs(port=0) as server, tempfile.TemporaryDirectory() as scratch:
        client = make_client(server.endpoint_url)  # dummy credentials for a local server
        for run in range(runs):
            url = client.create_queue(QueueName=f"stopping-{run}")["QueueUrl"]
            Queue(url=url, sqs_client=client).send_task("record", {"n": run})
            record = Path(scratch) / f"record-{run}"
            record.touch()
            worker = _worker(url, server.endpoint_url, record, "--drain")
            finished = _wait_for_record(record)
            worker.wait(60)
            drains.append(time.monotonic() - finished)

            worker = _worker(url, server.endpoint_url, record)
            time.sleep(3 + (run % 4) * 0.25)  # idle, at different points of a poll
            asked = time.monotonic()
            worker.send_signal(signal.SIGINT)
            worker.wait(60)
            stops.append(time.monotonic() - asked)
    return drains, stops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stopping")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    drains, stops = measure(args.runs)
    for name, values in (("--drain exit after the last message", drains), ("SIGINT exit", stops)):
        verdict = "met" if max(values) <= TARGET_SECONDS else "missed"
        print(
            f"{name}: median {statistics.median(values):.2f} s, max {max(values):.2f} s "
            f"over {len(values)} runs (target {TARGET_SECONDS:.0f} s: {verdict})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
