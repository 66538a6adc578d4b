"""The real SQS server of the head-to-head, each in its own process, counting calls.

``localstack``: LocalStack's SQS (its own implementation, fast at any depth) from the venv
the test suite uses (``.venv-localstack``, made by ``make localstack``, or
``$SQSX_LOCALSTACK_PYTHON``), behind ``bench.peers.server --upstream`` which counts.
``moto``: ``bench.peers.server`` alone, moto counting in its own process. moto's
ReceiveMessage reads the whole queue (about 1.2 ms per queued message on this machine,
so 2.5 s per receive at 2,000 queued tasks): on moto the figures measure moto.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.peers.contenders import ROOT

LOCALSTACK_PYTHON = Path(
    os.environ.get("SQSX_LOCALSTACK_PYTHON", ROOT / ".venv-localstack" / "bin" / "python")
)
_START_SECONDS = 180.0


class Server:
    """A running server: where to send SQS calls, and the calls counted so far."""

    def __init__(self, name: str, endpoint: str) -> None:
        self.name = name
        self.endpoint = endpoint

    def calls(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.endpoint}/_bench/calls", timeout=10) as answer:
            return {str(k): int(v) for k, v in json.load(answer).items()}


def default_kind() -> str:
    """LocalStack when its venv is there, else moto."""
    return "localstack" if LOCALSTACK_PYTHON.exists() else "moto"


@contextmanager
def running(kind: str) -> Iterator[Server]:
    """Start the ``kind`` server (and its counter), yield it, stop both."""
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        upstream: list[str] = []
        if kind == "localstack":
            upstream = ["--upstream", stack.enter_context(_localstack(tmp))]
        elif kind != "moto":
            raise ValueError(f"unknown server {kind!r}: moto or localstack")
        port_file = tmp / "port"
        counter = _started(
            [sys.executable, "-m", "bench.peers.server", "--port-file", str(port_file), *upstream],
            cwd=ROOT,
        )
        stack.callback(_stop, counter)
        _wait_for(lambda: port_file.exists() and bool(port_file.read_text()), counter, "counter")
        yield Server(kind, f"http://127.0.0.1:{port_file.read_text()}")


@contextmanager
def _localstack(tmp: Path) -> Iterator[str]:
    if not LOCALSTACK_PYTHON.exists():
        raise RuntimeError(
            f"{LOCALSTACK_PYTHON} is missing: run `make localstack`, or --server moto"
        )
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "SERVICES": "sqs",
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "LOCALSTACK_HOST": f"127.0.0.1:{port}",
        "SQS_ENDPOINT_STRATEGY": "off",
        "DNS_ADDRESS": "0",
        "LOCALSTACK_VOLUME_DIR": str(tmp / "volume"),
        "PERSISTENCE": "0",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DISABLE_EVENTS": "1",
    }
    log = (tmp / "localstack.log").open("wb")
    process = _started(
        [str(LOCALSTACK_PYTHON), "-m", "localstack.runtime.main"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(lambda: _answers(f"{url}/_localstack/health"), process, "LocalStack")
        yield url
    finally:
        _stop(process)
        log.close()


def _started(command: list[str], **options: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        command, stdin=subprocess.DEVNULL, start_new_session=True, **options
    )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _wait_for(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + _START_SECONDS
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, SIGKILL after 15 s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
