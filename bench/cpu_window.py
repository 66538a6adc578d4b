"""CPU over a window of a run: of a process tree (a supervisor and its children), of
another process (the server), and of the whole machine, read from Linux's ``/proc``.

``bench.processes`` takes its rate between the 10th and the 90th percentile of the
handlers' finish times; a ``CpuSampler`` running alongside gives the CPU spent in that same
window, so start-up (imports) and the drain's end are not billed to the messages, and the
machine's other jobs (what the run's processes did not use of the busy time) can be
reported next to the figure they spoil. Elsewhere than Linux every figure reads 0.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuSampler", "WindowCpu", "process_cpu_seconds"]

_SAMPLE_SECONDS = 0.2


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _machine_busy_seconds() -> float:
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    values = [int(v) for v in first]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _Sample:
    at: float  # time.time()
    tree: dict[int, float]  # pid -> CPU seconds
    other: float
    machine: float


@dataclass(frozen=True)
class WindowCpu:
    """CPU seconds spent between two instants, and the window's length."""

    seconds: float
    root: float  # the tree's root process (the supervisor, or a lone worker)
    descendants: float  # its children (the worker processes of a fleet)
    other: float  # the other process watched (the server)
    machine: float  # every process of the machine

    @property
    def others_cores(self) -> float:
        """Cores the machine's other jobs used on average in the window."""
        ours = self.root + self.descendants + self.other
        return max(self.machine - ours, 0.0) / self.seconds if self.seconds > 0 else 0.0


class CpuSampler:
    """Samples, every 0.2 s until ``stop()``, the CPU of ``root`` and its descendants, of
    ``other``, and of the machine.

    Args:
        root: the process tree's root.
        other: another process to watch (e.g. the SQS server).
    """

    def __init__(self, root: int, other: int) -> None:
        self._root, self._other = root, other
        self._samples: list[_Sample] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-cpu", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while True:
            self._samples.append(self._sample())
            if self._done.wait(_SAMPLE_SECONDS):
                return

    def _sample(self) -> _Sample:
        tree: dict[int, float] = {}
        todo = [self._root]
        while todo:
            pid = todo.pop()
            tree[pid] = process_cpu_seconds(pid)
            todo += _children(pid)
        return _Sample(time.time(), tree, process_cpu_seconds(self._other), _machine_busy_seconds())

    def window(self, start: float, end: float) -> WindowCpu:
        """The CPU spent between the samples nearest ``start`` and ``end`` (``time.time()``
        values); a process must appear in both samples to count."""
        if len(self._samples) < 2:
            return WindowCpu(0.0, 0.0, 0.0, 0.0, 0.0)
        times = [s.at for s in self._samples]
        low = min(bisect.bisect_left(times, start), len(times) - 2)
        high = min(max(bisect.bisect_left(times, end), low + 1), len(times) - 1)
        first, last = self._samples[low], self._samples[high]
        spent = {pid: cpu - first.tree[pid] for pid, cpu in last.tree.items() if pid in first.tree}
        return WindowCpu(
            seconds=last.at - first.at,
            root=spent.pop(self._root, 0.0),
            descendants=sum(spent.values()),
            other=last.other - first.other,
            machine=last.machine - first.machine,
        )
