"""``bench.cpu_window``: the CPU a process tree and the machine spent over a window."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench.cpu_window import CpuSampler, process_cpu_seconds

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads Linux /proc")


@pytest.mark.timeout(60)
def test_a_busy_child_is_billed_to_the_tree_and_an_idle_server_to_nobody() -> None:
    # Given a parent process that starts a child burning CPU for three seconds
    burn = "import time\nend = time.process_time() + 3.0\nwhile time.process_time() < end: pass"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])",
        ]
    )
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        # When the sampler watches them, and a window is taken while the child runs
        sampler = CpuSampler(parent.pid, idle.pid)
        time.sleep(0.8)  # the child has started
        started = time.time()
        time.sleep(1.5)
        ended = time.time()
        parent.wait(40)
        sampler.stop()
    finally:
        idle.kill()
        idle.wait(5)

    # Then the child's CPU is in the window's descendants (one thread: at most the
    # window's length), nothing in the idle process, and the machine spent at least that
    window = sampler.window(started, ended)
    assert 0.2 <= window.descendants <= window.seconds * 1.1
    assert window.other < 0.2
    assert window.machine >= window.descendants * 0.9
    assert window.others_cores >= 0
    assert process_cpu_seconds(parent.pid) == 0.0  # gone: reads 0, does not raise
