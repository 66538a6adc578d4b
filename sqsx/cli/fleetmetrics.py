"""``sqsx worker --processes N --metrics-port PORT``: one ``/metrics`` for the whole fleet.

The supervisor owns a temporary directory and starts its children with
``PROMETHEUS_MULTIPROC_DIR`` pointing at it, so each child's ``prometheus_client`` writes
its values to memory-mapped files there (``prometheus_client``'s multiprocess mode, chosen
when the library is imported: the variable has to be in the child's environment from its
start). The children serve nothing; the supervisor serves the directory's files, merged
(https://prometheus.github.io/client_python/multiprocess/):

- counters and histograms are summed over every child that ever ran, dead ones included,
  so a restarted child does not make a counter go backwards;
- ``sqsx_messages_in_progress`` / ``sqsx_messages_waiting`` are summed over the live
  children only (``livesum``): before each scrape, the files of every child that is no
  longer running are dropped (``mark_process_dead``);
- the sampled queue depth is the most recent reading of any child (``mostrecent``), not
  a sum: every child reads the same queue;
- ``sqsx_worker_info`` (an ``Info``, which multiprocess mode does not carry) is the
  supervisor's own.

The directory is removed when the supervisor ends.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sqsx.cli.supervisor import Fleet
from sqsx.cli.target import CommandFailed

__all__ = ["MULTIPROC_ENV", "fleet_metrics"]

logger = logging.getLogger(__name__)

#: The variable ``prometheus_client`` reads, at import, to write its values to files.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client names a live-mode gauge's file gauge_<mode>_<pid>.db
_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


@contextlib.contextmanager
def fleet_metrics(args: argparse.Namespace, fleet: Fleet) -> Iterator[Any]:
    """Serve the fleet's merged metrics on ``args.metrics_host:args.metrics_port`` while
    the block runs (the ``with`` gives the HTTP server), children started inside it
    writing to a directory this owns.

    Raises:
        CommandFailed: prometheus_client is missing, or the port cannot be bound.
    """
    try:
        from prometheus_client import CollectorRegistry, Info, start_http_server
    except ImportError as err:
        raise CommandFailed(
            "--metrics-port needs prometheus_client: pip install 'sqsx[metrics]'"
        ) from err
    from sqsx.metrics import worker_info

    path = tempfile.mkdtemp(prefix="sqsx-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    try:
        registry = CollectorRegistry()
        registry.register(LiveFilesCollector(path, lambda: live_pids(fleet)))
        info = Info("sqsx_worker", "The sqsx version and runtime.", registry=registry)
        info.info(worker_info())
        host, port = args.metrics_host, args.metrics_port
        try:
            server, _thread = start_http_server(port, addr=host, registry=registry)
        except OSError as err:
            raise CommandFailed(f"cannot serve metrics on {host}:{port}: {err}") from err
        logger.info(
            "serving Prometheus metrics of %d processes on http://%s:%d/metrics",
            args.processes,
            host,
            server.server_port,
        )
        os.environ[MULTIPROC_ENV] = path  # inherited by every child the fleet starts
        try:
            yield server
        finally:
            server.shutdown()
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


def live_pids(fleet: Fleet) -> set[int]:
    """The process ids of the fleet's children that have not exited."""
    processes = [child.process for child in fleet.children]
    return {p.pid for p in processes if p is not None and p.returncode is None}


class LiveFilesCollector:
    """``prometheus_client``'s ``MultiProcessCollector`` that first drops the live-mode
    gauge files of processes no longer running.

    Args:
        path: the multiprocess directory.
        live: returns the process ids still running.
    """

    def __init__(self, path: str, live: Callable[[], set[int]]) -> None:
        from prometheus_client import multiprocess

        self._path = path
        self._live = live
        self._files: Any = multiprocess  # untyped: used through Any
        self._merged: Any = self._files.MultiProcessCollector(None, path=path)

    def collect(self) -> Iterable[Any]:
        for pid in dead_pids(self._path, self._live()):
            self._files.mark_process_dead(pid, self._path)
        merged: Iterable[Any] = self._merged.collect()
        return merged


def dead_pids(path: str, running: set[int]) -> set[int]:
    """The pids with live-mode gauge files in ``path`` that are not in ``running``."""
    found = set()
    for name in glob.glob(os.path.join(path, "gauge_live*.db")):
        match = _LIVE_FILE.search(os.path.basename(name))
        if match is not None:
            found.add(int(match.group(1)))
    return found - running
