"""CPU-bound handlers: ``sqsx worker --processes 2`` against ``--processes 1``.

Each handler burns ``handler_ms`` of CPU (holding the GIL), so one process cannot use more
than one core however many threads it has. Each run fills a queue, drains it with
``sqsx worker --drain`` and takes the rate from the handlers' own finish times, between the
10th and the 90th percentile of the run (process start-up and the drain check at the end are
not in it). Runs of 1 and 2 processes alternate, and the ratio is of the medians.

The SQS is the simulator served over HTTP from a process of its own (``bench.sim_server``):
in-process, the worker processes of one run could not share its queue and its work would be
billed to the worker it runs in. Not moto's server: it re-reads the whole queue on every
call, so its CPU per message grows with the depth (42 ms per message on a 400-message queue
here, eight times the handler's 5 ms), and the benchmark would measure moto. The server
still takes some CPU of the same two cores, as do the children's start-up (imports) and the
drain checks; the figures say how much.

CPU is given two ways, in milliseconds per message: over the whole run (``RUSAGE_CHILDREN``:
start-up included) and in the window the rate is taken over (``bench.cpu_window``: the
steady state), split into the supervisor, the worker processes and the server. The same
window says how many cores the machine's other jobs took meanwhile: on a shared machine
that, not sqsx, is what keeps two processes from twice the rate of one, so the row says it,
and gives the ratio the steady-state CPU figures allow on two idle cores (an estimate).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from bench.cpu_window import CpuSampler, WindowCpu, process_cpu_seconds
from bench.report import Row
from sqsx.codec import encode_kwargs, task_attributes

ROOT = Path(__file__).resolve().parents[1]
# What the issue asks of 2 processes on this 2-core machine.
TARGET_RATIO = 1.8


@dataclass(frozen=True)
class ProcessesScenario:
    """``tasks`` handlers of ``handler_ms`` CPU each, ``threads`` per process."""

    tasks: int = 1_500
    handler_ms: float = 5.0
    threads: int = 4
    repeats: int = 3


@dataclass
class ProcessesResult:
    """Messages per second by process count, one figure per run, and CPU milliseconds per
    message of the workers (supervisor and children) and of the server."""

    scenario: ProcessesScenario
    rates: dict[int, list[float]] = field(default_factory=dict)
    worker_cpu_ms: dict[int, list[float]] = field(default_factory=dict)
    server_cpu_ms: dict[int, list[float]] = field(default_factory=dict)
    windows: dict[int, list[WindowCpu]] = field(default_factory=dict)
    window_messages: dict[int, list[int]] = field(default_factory=dict)

    def median(self, processes: int) -> float:
        return statistics.median(self.rates[processes])

    @property
    def ratio(self) -> float:
        return self.median(2) / self.median(1)

    def steady_ms(self, processes: int, part: str) -> float:
        """Median steady-state CPU ms per message of ``part`` (root, descendants, other)."""
        return statistics.median(
            float(getattr(w, part)) * 1000 / max(n, 1)
            for w, n in zip(self.windows[processes], self.window_messages[processes], strict=True)
        )

    def others_cores(self) -> float:
        """The largest average of cores other jobs took during a measured window."""
        return max(w.others_cores for runs in self.windows.values() for w in runs)

    @property
    def idle_estimate(self) -> float:
        """The ratio the steady-state CPU per message allows on two idle cores: one process
        is held to one core; two share both with the server and the supervisor."""
        one = self.steady_ms(1, "root") + self.steady_ms(1, "descendants")
        one_rate = min(1000 / one, 2000 / (one + self.steady_ms(1, "other")))
        two = sum(self.steady_ms(2, part) for part in ("root", "descendants", "other"))
        return (2000 / two) / one_rate

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": asdict(self.scenario),
            "rates": {str(k): v for k, v in self.rates.items()},
            "worker_cpu_ms_per_message": {str(k): v for k, v in self.worker_cpu_ms.items()},
            "server_cpu_ms_per_message": {str(k): v for k, v in self.server_cpu_ms.items()},
            "ratio": self.ratio,
            "steady_cpu_ms_per_message": {
                str(k): {part: self.steady_ms(k, part) for part in ("root", "descendants", "other")}
                for k in self.windows
            },
            "others_cores_max": self.others_cores(),
            "idle_estimate": self.idle_estimate,
        }


def row(result: ProcessesResult) -> Row:
    """The table's line for ``result``."""
    scenario = result.scenario
    met = result.ratio >= TARGET_RATIO
    others = result.others_cores()
    busy = f"; other jobs took up to {others:.1f} of 2 cores" if others > 0.25 else ""
    return Row(
        scenario=f"CPU-bound {scenario.handler_ms:g} ms x {scenario.threads} threads: "
        "--processes 2 vs 1",
        measured=f"{result.median(2):.0f} vs {result.median(1):.0f} msg/s "
        f"(x{result.ratio:.2f}, medians of {len(result.rates[1])}; on 2 idle cores the "
        f"steady CPU allows x{result.idle_estimate:.2f}, an estimate{busy})",
        reference="simulated SQS, own process",
        calls="",
        cpu=f"ms/msg, 2 processes, steady: workers {result.steady_ms(2, 'descendants'):.2f}, "
        f"supervisor {result.steady_ms(2, 'root'):.2f}, server {result.steady_ms(2, 'other'):.2f}"
        f" (1 process: {result.steady_ms(1, 'root'):.2f}); with start-up: workers "
        f"{statistics.median(result.worker_cpu_ms[2]):.1f}",
        integrity="",
        target=f">= x{TARGET_RATIO}",
        verdict="met" if met else f"MISSED: x{result.ratio:.2f}",
    )


def run(scenario: ProcessesScenario) -> ProcessesResult:
    """Start the server, then alternate 1- and 2-process drains ``repeats`` times."""
    port_file = Path(tempfile.mkdtemp()) / "port"
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.sim_server", "--port-file", str(port_file)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{_read_port(port_file)}"
    result = ProcessesResult(scenario)
    for figures in (result.rates, result.worker_cpu_ms, result.server_cpu_ms):
        figures.update({1: [], 2: []})
    result.windows, result.window_messages = {1: [], 2: []}, {1: [], 2: []}
    try:
        client = _client(endpoint)
        _wait_for(client)
        for _ in range(scenario.repeats):
            for processes in (1, 2):
                url = _fill(client, scenario)
                server_before = process_cpu_seconds(server.pid)
                workers_before = _children_cpu_seconds()
                rate, window, messages = _drain(
                    client, endpoint, url, scenario, processes, server.pid
                )
                per_message = 1000 / scenario.tasks
                result.rates[processes].append(rate)
                result.windows[processes].append(window)
                result.window_messages[processes].append(messages)
                result.worker_cpu_ms[processes].append(
                    (_children_cpu_seconds() - workers_before) * per_message
                )
                result.server_cpu_ms[processes].append(
                    (process_cpu_seconds(server.pid) - server_before) * per_message
                )
    finally:
        server.terminate()
        server.wait(10)
    return result


def _fill(client: Any, scenario: ProcessesScenario) -> str:
    url: str = client.create_queue(QueueName=f"cpu-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    body = encode_kwargs({"ms": scenario.handler_ms})
    for start in range(0, scenario.tasks, 10):
        entries = [
            {"Id": str(i), "MessageBody": body, "MessageAttributes": task_attributes("burn")}
            for i in range(min(10, scenario.tasks - start))
        ]
        client.send_message_batch(QueueUrl=url, Entries=entries)
    return url


def _drain(
    client: Any,
    endpoint: str,
    url: str,
    scenario: ProcessesScenario,
    processes: int,
    server_pid: int,
) -> tuple[float, WindowCpu, int]:
    """Drain ``url`` with ``processes`` processes; messages per second, and the CPU spent
    over the window the rate is taken on, and the messages finished in it."""
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "finished.txt"
        env = {**os.environ, "SQSX_BENCH_RECORD": str(record)}
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sqsx",
                "worker",
                "bench.cpu_app:make_queue",
                "--app-dir",
                str(ROOT),
                "--queue-url",
                url,
                "--endpoint-url",
                endpoint,
                "--processes",
                str(processes),
                "--threads",
                str(scenario.threads),
                "--polling-wait",
                "1",
                "--drain",
                "--progress-interval",
                "0",
                "--log-level",
                "WARNING",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sampler = CpuSampler(worker.pid, server_pid)
        try:
            code = worker.wait(600)
        finally:
            sampler.stop()
            if worker.poll() is None:
                worker.kill()
        if code != 0:
            raise RuntimeError(f"sqsx worker --processes {processes} exited with {code}")
        finished = sorted(float(line) for line in record.read_text().split())
    client.delete_queue(QueueUrl=url)
    assert len(finished) >= scenario.tasks, f"{len(finished)} of {scenario.tasks} ran"
    low, high = int(0.1 * len(finished)), int(0.9 * len(finished))
    window = sampler.window(finished[low], finished[high])
    return (high - low) / (finished[high] - finished[low]), window, high - low


def _children_cpu_seconds() -> float:
    """CPU seconds of the finished worker runs (each supervisor reaps its children)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _client(endpoint: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(max_pool_connections=4),
    )


def _read_port(path: Path) -> int:
    deadline = time.monotonic() + 30
    while not path.exists() or not path.read_text():
        if time.monotonic() > deadline:
            raise RuntimeError("the simulated SQS server did not start")
        time.sleep(0.05)
    return int(path.read_text())


def _wait_for(client: Any) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            client.list_queues()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
