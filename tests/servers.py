"""The SQS servers the integration tests run on, as a pytest plugin (``conftest.py`` loads
it): moto (in-process) and LocalStack (a child process from its own venv), each started at
most once per test session, on first use, and stopped at its end.

Every test that uses ``endpoint_url`` (or a fixture built on it: ``sqs_client``,
``make_queue``, ``queue_url``) runs once per server, with the ids ``[moto]`` and
``[localstack]``; tests that use none of them run once. ``--sqs-servers=moto`` (or
``$SQSX_TEST_SERVERS``) narrows the run. A test that can only mean something on one server
says so with ``@pytest.mark.only_on("moto", reason=...)``; a server that deviates from what
AWS documents gets ``@deviates_on("localstack", reason=...)``, an xfail for that server
only, each listed in RELIABILITY.md ("Server differences"). The fault suite (``-m fault``)
runs on both, like every other integration test.

LocalStack's SQS is its own implementation, not moto's, so a test that passes on both is
less likely to pin one server's quirks. It runs without Docker: ``localstack-core`` from
PyPI on Python 3.13, installed by ``make localstack`` into ``.venv-localstack`` with the
pins of ``tests/localstack/constraints.txt``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sqsx.local import LocalSqs

ROOT = Path(__file__).resolve().parent.parent
#: The interpreter of LocalStack's venv; ``$SQSX_LOCALSTACK_PYTHON`` points elsewhere.
LOCALSTACK_PYTHON = Path(
    os.environ.get("SQSX_LOCALSTACK_PYTHON", ROOT / ".venv-localstack" / "bin" / "python")
)
#: Every server a test can run on, in the order the session runs them.
SERVERS = ("moto", "localstack")
_STARTUP_SECONDS = 120.0  # a cold start on a busy 2-core machine takes 10-40 s
_STOP_SECONDS = 15.0


@dataclass
class SqsServer:
    """One running server: its name (``moto``/``localstack``) and its endpoints."""

    name: str
    endpoint_url: str
    stop: Any = field(repr=False)

    @property
    def s3_endpoint_url(self) -> str:
        """Both servers answer S3 on the same endpoint as SQS."""
        return self.endpoint_url


def start_moto() -> tuple[SqsServer, LocalSqs]:
    """moto's server in a thread on a free port of 127.0.0.1."""
    local = LocalSqs(port=0).start()
    return SqsServer("moto", local.endpoint_url, local.stop), local


class LocalStackUnavailable(RuntimeError):
    """LocalStack is not installed, or did not start; the message says what to do."""


def start_localstack(log_dir: Path | None = None) -> SqsServer:
    """LocalStack (SQS and S3 only) on a free port of 127.0.0.1, ready when its health
    endpoint answers. Tries three ports in case another process takes one between our
    probe and its bind.

    Raises:
        LocalStackUnavailable: its venv is missing, or it did not answer in time.
    """
    if not LOCALSTACK_PYTHON.exists():
        raise LocalStackUnavailable(
            f"{LOCALSTACK_PYTHON} is missing: run `make localstack` (installs LocalStack "
            "into .venv-localstack), or run only on moto with --sqs-servers=moto"
        )
    workdir = Path(tempfile.mkdtemp(prefix="sqsx-localstack-", dir=log_dir))
    last_error = ""
    for attempt in range(3):
        port = _free_port()
        log = workdir / f"localstack-{attempt}.log"
        process = _spawn(port, workdir / f"volume-{attempt}", log)
        url = f"http://127.0.0.1:{port}"
        if _wait_healthy(url, process):
            return SqsServer("localstack", url, lambda p=process: _terminate(p))
        _terminate(process)
        last_error = log.read_text(errors="replace")[-2000:]
    raise LocalStackUnavailable(f"LocalStack did not start; end of its log:\n{last_error}")


def _spawn(port: int, volume: Path, log: Path) -> subprocess.Popen[bytes]:
    volume.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(volume)),
        "SERVICES": "sqs,s3",
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        # The default (twisted) gateway binds 0.0.0.0 whatever GATEWAY_LISTEN's host says;
        # hypercorn binds the host given (test_servers.py checks it).
        "GATEWAY_SERVER": "hypercorn",
        "LOCALSTACK_HOST": f"127.0.0.1:{port}",
        "SQS_ENDPOINT_STRATEGY": "off",  # URLs as http://127.0.0.1:PORT/ACCOUNT/NAME
        "DNS_ADDRESS": "0",  # no DNS server
        "LOCALSTACK_VOLUME_DIR": str(volume),
        "PERSISTENCE": "0",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DISABLE_EVENTS": "1",  # no usage analytics
        "LOCALSTACK_CLI": "0",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(LOCALSTACK_PYTHON), "-m", "localstack.runtime.main"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, stopped as one
            preexec_fn=_die_with_parent,
        )


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG), so no LocalStack outlives a killed test run."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux/glibc: the session fixture's stop is all there is
        pass


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + _STARTUP_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/_localstack/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    return False


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to its process group, SIGKILL after a bounded wait."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    except ProcessLookupError:
        pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the pytest plugin -----------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--sqs-servers",
        default=os.environ.get("SQSX_TEST_SERVERS", ",".join(SERVERS)),
        help="comma-separated servers for the integration tests (default: moto,localstack; "
        "$SQSX_TEST_SERVERS)",
    )


def pytest_configure(config: pytest.Config) -> None:
    chosen = [name.strip() for name in config.getoption("--sqs-servers").split(",") if name]
    unknown = sorted(set(chosen) - set(SERVERS))
    if unknown:
        raise pytest.UsageError(f"--sqs-servers: unknown {unknown}; choose from {SERVERS}")
    config.stash[_CHOSEN] = [name for name in SERVERS if name in chosen]


_CHOSEN = pytest.StashKey[list[str]]()


def deviates_on(server: str, *, reason: str, strict: bool = True) -> pytest.MarkDecorator:
    """An xfail for ``server`` alone, where it does not do what AWS documents (``reason``
    says what, and RELIABILITY.md "Server differences" has a minimal reproduction). Strict
    by default: when the server is fixed, the test says so by failing."""
    if server not in SERVERS:
        raise ValueError(f"unknown server {server!r}; choose from {SERVERS}")
    return pytest.mark.deviates_on(server, reason=reason, strict=strict)


#: LocalStack returns later messages of a FIFO group while an earlier one is still in flight,
#: which AWS does not (RELIABILITY.md, "Server differences"). sqsx's worker keeps group order
#: itself (sqsx.ordering); a test that checks the order in which SQS redelivers a group
#: checks the server, and fails on LocalStack.
LOCALSTACK_FIFO_GROUP_LOCK = deviates_on(
    "localstack",
    reason="returns a FIFO group's later messages while an earlier one is in flight",
)


def _servers_for(definition: Any, chosen: list[str]) -> list[str]:
    only = definition.get_closest_marker("only_on")
    if only is not None:
        if not only.kwargs.get("reason"):
            raise pytest.UsageError(f"{definition.nodeid}: only_on needs a reason")
        return [name for name in chosen if name == only.args[0]]
    return chosen


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that needs a server once per chosen server."""
    if "sqs_server" not in metafunc.fixturenames:
        return
    servers = _servers_for(metafunc.definition, metafunc.config.stash[_CHOSEN])
    if not servers:  # a test for a server not chosen in this run: deselected, not skipped
        metafunc.parametrize("sqs_server", [_NOT_CHOSEN], indirect=True, scope="session")
        return
    metafunc.parametrize("sqs_server", servers, indirect=True, scope="session")


#: The parameter of a test whose only server is not chosen in this run.
_NOT_CHOSEN = "not-chosen"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unchosen = [item for item in items if _server_of(item) == _NOT_CHOSEN]
    if unchosen:
        config.hook.pytest_deselected(items=unchosen)
        items[:] = [item for item in items if _server_of(item) != _NOT_CHOSEN]
    for item in items:
        server = _server_of(item)
        for mark in item.iter_markers("deviates_on"):
            if mark.args[0] == server:
                reason = f"{server} deviates from AWS: {mark.kwargs['reason']}"
                item.add_marker(pytest.mark.xfail(reason=reason, strict=mark.kwargs["strict"]))


def _server_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("sqs_server") if callspec else None


class _ServerPool:
    """Each server started on first use and stopped at the end of the session."""

    def __init__(self, tmp: Any) -> None:
        self._tmp = tmp
        self._servers: dict[str, SqsServer] = {}
        self._failed: dict[str, str] = {}
        self.moto: LocalSqs | None = None

    def get(self, name: str) -> SqsServer:
        if name in self._failed:
            pytest.fail(self._failed[name], pytrace=False)
        if name not in self._servers:
            if name == "moto":
                self._servers[name], self.moto = start_moto()
            else:
                try:
                    self._servers[name] = start_localstack(self._tmp)
                except LocalStackUnavailable as err:
                    self._failed[name] = str(err)
                    pytest.fail(str(err), pytrace=False)
        return self._servers[name]

    def close(self) -> None:
        for server in self._servers.values():
            server.stop()


@pytest.fixture(scope="session")
def server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_ServerPool]:
    pool = _ServerPool(tmp_path_factory.mktemp("servers"))
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def sqs_server(request: pytest.FixtureRequest, server_pool: _ServerPool) -> SqsServer:
    """The server of this test's id (``[moto]`` or ``[localstack]``). A test that asks for
    it only at run time (``request.getfixturevalue``) was not parametrised: it gets moto."""
    return server_pool.get(getattr(request, "param", "moto"))


@pytest.fixture(scope="session")
def local_sqs(server_pool: _ServerPool) -> LocalSqs:
    """moto's SQS server (``sqsx.local.LocalSqs``), for tests about moto itself."""
    server_pool.get("moto")
    assert server_pool.moto is not None
    return server_pool.moto


@pytest.fixture(scope="session")
def endpoint_url(sqs_server: SqsServer) -> str:
    return sqs_server.endpoint_url


@pytest.fixture(scope="session")
def s3_endpoint_url(sqs_server: SqsServer) -> str:
    """S3 on the same server as ``endpoint_url``."""
    return sqs_server.s3_endpoint_url


@pytest.fixture(scope="session")
def server_name(sqs_server: SqsServer) -> str:
    """``moto`` or ``localstack``: for the rare assertion that must differ by server."""
    return sqs_server.name
